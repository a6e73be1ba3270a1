import time
from pathlib import Path

import pytest


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.anyio
async def test_shell_reports_exit_code_and_output(registry):
    result = await registry.call("run_shell", {"command": "echo out; echo err >&2; exit 3"})
    assert result.ok
    assert result.content.splitlines()[0] == "exit code 3"
    assert "out" in result.content and "err" in result.content


@pytest.mark.anyio
async def test_timeout_kills_the_whole_process_group(workspace, registry):
    # A background child writes its pid; after the timeout neither it nor the shell may survive.
    result = await registry.call("run_shell", {"command": "sleep 30 & echo $! > child.pid; wait", "timeout_s": 0.5})
    assert not result.ok and result.error_kind == "timeout"
    pid = int((workspace / "child.pid").read_text())
    deadline = time.monotonic() + 5  # SIGKILL delivery is asynchronous; wait for the effect, not a time
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid)


@pytest.mark.anyio
async def test_long_output_keeps_head_and_tail(registry):
    result = await registry.call("run_shell", {"command": "for i in $(seq 1 20000); do echo line$i; done"})
    assert "line1\n" in result.content and "line20000" in result.content
    assert "bytes of output omitted" in result.content
    assert len(result.content) < 15_000


@pytest.mark.anyio
async def test_run_python_sees_workspace_modules(workspace, registry):
    (workspace / "helper.py").write_text("VALUE = 7\n")
    result = await registry.call("run_python", {"code": "import helper\nprint(helper.VALUE * 6)"})
    assert result.ok and "42" in result.content


@pytest.mark.anyio
async def test_calculator_is_safe_arithmetic(registry):
    assert (await registry.call("calculator", {"expression": "17*23"})).content == "391"
    assert (await registry.call("calculator", {"expression": "sqrt(16) + 2**10"})).content == "1028"
    assert (await registry.call("calculator", {"expression": "1/3"})).content == "0.333333333333"
    for bad in ("__import__('os').system('true')", "9**9**9", "2^8", "1/0", "open('x')"):
        result = await registry.call("calculator", {"expression": bad})
        assert not result.ok and result.error_kind == "invalid_arguments", bad
