import pytest

from iclaw.errors import SandboxViolation
from iclaw.tools import Permissions, builtin_registry


@pytest.mark.anyio
async def test_ask_mode_shows_a_diff_and_obeys_the_answer(workspace):
    (workspace / "a.txt").write_text("one\ntwo\n")
    asked = []

    async def approver(request):
        asked.append(request)
        return request.tool == "edit_file"

    registry = builtin_registry(workspace, Permissions(mode="ask", approver=approver))
    edit = await registry.call("edit_file", {"path": "a.txt", "search": "two", "replace": "three"})
    assert edit.ok
    assert "-two" in asked[0].preview and "+three" in asked[0].preview
    shell = await registry.call("run_shell", {"command": "echo hi"})
    assert not shell.ok and "declined" in shell.content
    assert asked[1].preview == "$ echo hi"
    assert (await registry.call("read_file", {"path": "a.txt"})).ok  # reads never ask
    assert len(asked) == 2


@pytest.mark.anyio
async def test_ask_mode_without_anyone_to_ask_refuses(workspace):
    registry = builtin_registry(workspace, Permissions(mode="ask"))
    result = await registry.call("write_file", {"path": "x.txt", "content": "x"})
    assert not result.ok and "needs approval" in result.content
    assert not (workspace / "x.txt").exists()


@pytest.mark.anyio
async def test_allow_and_deny_rules():
    perms = Permissions(mode="ask", allow=["run_shell:pytest*"], deny=["write_file:*.lock", "run_shell:rm *"])
    await perms.check("run_shell", "exec", "pytest -q")  # allowed without asking
    with pytest.raises(SandboxViolation, match="denied by the rule"):
        await perms.check("run_shell", "exec", "rm -rf data")
    with pytest.raises(SandboxViolation, match="denied by the rule"):
        await Permissions(mode="auto", deny=["write_file:*.lock"]).check("write_file", "write", "poetry.lock")
    with pytest.raises(SandboxViolation, match="needs approval"):
        await perms.check("write_file", "write", "a.txt")


def test_unknown_mode_is_rejected():
    with pytest.raises(SandboxViolation, match="unknown permission mode"):
        Permissions(mode="yolo")


@pytest.mark.anyio
async def test_a_decline_with_a_reason_is_the_users_decision_not_a_failure(workspace):
    from iclaw.failure import FailurePolicy
    from iclaw.profile import load_profile
    from iclaw.providers.turn import ToolCall
    from iclaw.tools import Verdict

    registry = builtin_registry(workspace, Permissions(mode="ask", approver=lambda r: Verdict(False, "use notes.md instead")))
    result = await registry.call("write_file", {"path": "x.txt", "content": "x"})
    assert not result.ok and result.error_kind == "declined" and "use notes.md instead" in result.content
    policy = FailurePolicy(load_profile("v2").failure)
    call = ToolCall("c1", "write_file", {"path": "x.txt", "content": "x"})
    assert "the user's decision, not an error" in policy.observation(result)
    assert policy.decide(1, [(call, result)]).action == "continue" and policy.failures == 0


@pytest.mark.anyio
async def test_the_wait_for_approval_is_not_tool_time_nor_timeout(workspace):
    import anyio

    from iclaw.executor import ToolExecutor
    from iclaw.providers.turn import ToolCall
    from iclaw.tools.permissions import user_wait

    async def slow_user(request):
        await anyio.sleep(2.0)
        return True

    registry = builtin_registry(workspace, Permissions(mode="ask", approver=slow_user))
    executor = ToolExecutor(registry, timeout_s=1.5)
    with user_wait() as wait:
        [result] = await executor.run([ToolCall("c1", "write_file", {"path": "x.txt", "content": "x\n"})])
    assert result.ok, result.content  # the 2 s of thinking did not run into the 1.5 s timeout
    assert wait.seconds >= 1.9  # ... and was booked as the user's time, taken out of the tool's duration
