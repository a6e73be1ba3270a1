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
