"""MCP servers' tools in iclaw: a small server (tests/iclaw/mcp_demo_server.py) over stdio and HTTP.

Listed as `demo.TOOL` with iclaw's flags, called, validated before they leave, run in
parallel only when read-only, timed out, dropped when the server dies or cannot start,
and asked about in `ask` mode with the destructive wording.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iclaw.executor import ToolExecutor
from iclaw.mcp import McpHub, parse_servers
from iclaw.providers.turn import ToolCall
from iclaw.tools import Permissions, builtin_registry

SERVER = str(Path(__file__).with_name("mcp_demo_server.py"))


def hub_for(servers: dict, workspace: Path, notices: list[str] | None = None) -> McpHub:
    entries, problems = parse_servers(servers, "test-config.yaml")
    assert problems == []
    sink = notices if notices is not None else []
    return McpHub(entries, workspace, on_notice=sink.append)


def demo(*flags: str) -> dict:
    # A generous start-up limit: on a starved machine importing the SDK alone can take many seconds.
    return {"demo": {"command": sys.executable, "args": [SERVER, *flags], "startup_timeout_s": 180}}


@pytest.fixture(scope="module")
def stdio_hub(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # the server's log goes to a temp home, never the real one
        patch.setenv("ICLAW_HOME", str(tmp_path_factory.mktemp("home")))
        with hub_for(demo(), tmp_path_factory.mktemp("ws")) as hub:
            yield hub


def registry_with(hub: McpHub, workspace: Path, permissions: Permissions | None = None):
    permissions = permissions or Permissions(mode="auto")
    registry = builtin_registry(workspace, permissions)
    hub.attach(registry, permissions)
    return registry


def spans(results) -> list[tuple[float, float]]:
    return [tuple(float(x) for x in re.search(r"start=([\d.]+) end=([\d.]+)", r.content).groups()) for r in results]


def test_tools_are_listed_namespaced_with_their_flags(stdio_hub, workspace):
    registry = registry_with(stdio_hub, workspace)
    names = [n for n in registry.names() if n.startswith("demo.")]
    assert names == ["demo.lookup", "demo.meet", "demo.add_note", "demo.delete_note", "demo.nap", "demo.crash"]
    lookup, add, delete = registry.get("demo.lookup"), registry.get("demo.add_note"), registry.get("demo.delete_note")
    assert (lookup.read_only, lookup.parallel_safe) == (True, True)
    assert (add.read_only, add.parallel_safe) == (False, False)
    assert (delete.read_only, delete.parallel_safe) == (False, False)
    assert "MCP server demo" in lookup.description
    schema = lookup.schema()["function"]["parameters"]
    assert schema["required"] == ["key"] and "title" not in schema and "title" not in schema["properties"]["key"]
    assert "read_file" in registry  # the built-ins are still there


@pytest.mark.anyio
async def test_calls_return_text_and_bad_arguments_never_reach_the_server(stdio_hub, workspace):
    registry = registry_with(stdio_hub, workspace)
    ok = await registry.call("demo.lookup", {"key": "abc"})
    assert ok.ok and ok.content.startswith("abc -> ABC")
    bad = await registry.call("demo.lookup", {"key": 3})
    assert not bad.ok and bad.error_kind == "invalid_arguments"
    assert "3 is not of type 'string'" in bad.content and '"required": ["key"]' in bad.content
    missing = await registry.call("demo.add_note", {"name": "x"})
    assert missing.error_kind == "invalid_arguments" and "'text' is a required property" in missing.content


@pytest.mark.anyio
async def test_read_only_calls_overlap_and_writing_calls_take_turns(stdio_hub, workspace):
    registry = registry_with(stdio_hub, workspace)
    executor = ToolExecutor(registry, parallel=True, timeout_s=30)
    reads = await executor.run([ToolCall(id=f"r{i}", name="demo.meet", arguments={"key": f"k{i}"}) for i in range(2)])
    assert [r.content for r in reads] == ["k0 met", "k1 met"]  # each found the other running
    writes = await executor.run([ToolCall(id=f"w{i}", name="demo.add_note", arguments={"name": f"n{i}", "text": "t"}) for i in range(2)])
    (ws0, we0), (ws1, we1) = spans(writes)
    assert we0 <= ws1  # the second write started after the first had finished


@pytest.mark.anyio
async def test_a_slow_call_times_out_and_the_server_keeps_serving(stdio_hub, workspace):
    registry = registry_with(stdio_hub, workspace)
    executor = ToolExecutor(registry, timeout_s=0.5)
    [slow] = await executor.run([ToolCall(id="s", name="demo.nap", arguments={"seconds": 60})])
    assert not slow.ok and slow.error_kind == "timeout" and "timed out after 0.5s" in slow.content
    after = await registry.call("demo.lookup", {"key": "still"})
    assert after.ok and stdio_hub.states[0].status == "running"


@pytest.mark.anyio
async def test_a_crashing_server_is_reported_once_and_its_tools_disappear(workspace):
    notices: list[str] = []
    with hub_for(demo(), workspace, notices) as hub:
        registry = registry_with(hub, workspace)
        result = await registry.call("demo.crash", {})
        assert not result.ok and "MCP server 'demo' stopped" in result.content
        for _ in range(100):  # the watcher may report it an instant later; it is reported once either way
            if len(notices) == 1:
                break
            time.sleep(0.02)
        assert len(notices) == 1 and "'demo' stopped" in notices[0] and "\n" not in notices[0]
        assert not any(n.startswith("demo.") for n in registry.names())
        assert "read_file" in registry
        again = await registry.call("demo.lookup", {"key": "x"})
        assert again.error_kind == "invalid_arguments" and "unknown tool" in again.content
        assert hub.states[0].status == "failed"


def test_a_server_that_cannot_start_is_one_line_and_the_others_go_on(workspace):
    notices: list[str] = []
    servers = {
        **demo(),
        "broken": {"command": sys.executable, "args": ["-c", "import sys; print('no such database', file=sys.stderr); sys.exit(2)"]},
        "missing": {"command": "/no/such/mcp-server"},
    }
    with hub_for(servers, workspace, notices) as hub:
        registry = registry_with(hub, workspace)
        assert [s.status for s in hub.states] == ["running", "failed", "failed"]
    assert len(notices) == 2 and all("\n" not in n for n in notices)
    broken, missing = sorted(notices)  # the servers start side by side: any order
    assert broken.startswith("test-config.yaml: server 'broken': cannot start") and "no such database" in broken
    assert "server 'missing'" in missing and "command not found: /no/such/mcp-server" in missing
    assert "demo.lookup" in registry and not any(n.startswith(("broken.", "missing.")) for n in registry.names())


def test_an_invalid_tool_schema_leaves_the_server_out(workspace):
    notices: list[str] = []
    with hub_for(demo("--bad-schema"), workspace, notices) as hub:
        registry = registry_with(hub, workspace)
    [line] = notices
    assert line.startswith("test-config.yaml: server 'demo': cannot start: tool 'lookup': field inputSchema: not valid JSON Schema")
    assert not any(n.startswith("demo.") for n in registry.names())


def test_a_tool_name_taken_in_the_registry_is_reported_and_skipped(stdio_hub, workspace):
    from iclaw.tools import add_mock_tools

    permissions = Permissions(mode="auto")
    registry = builtin_registry(workspace, permissions)
    add_mock_tools(registry, [{"name": "demo.lookup", "description": "a task's mock"}])
    before = len(stdio_hub.problems)
    stdio_hub.attach(registry, permissions)
    assert registry.get("demo.lookup").description == "a task's mock"
    assert "tool 'lookup' clashes with the tool demo.lookup" in stdio_hub.problems[before]
    del stdio_hub.problems[before:]


@pytest.mark.anyio
async def test_ask_mode_asks_with_the_destructive_wording(stdio_hub, workspace):
    asked = []
    answers = iter([False, True])

    def approver(request):
        asked.append(request)
        return next(answers)

    registry = registry_with(stdio_hub, workspace, Permissions(mode="ask", approver=approver))
    assert (await registry.call("demo.lookup", {"key": "a"})).ok and asked == []  # read-only: no question
    declined = await registry.call("demo.delete_note", {"name": "n1"})
    assert not declined.ok and "the user declined demo.delete_note" in declined.content
    allowed = await registry.call("demo.delete_note", {"name": "n1"})
    assert allowed.ok and allowed.content == "deleted n1"
    assert [a.tool for a in asked] == ["demo.delete_note", "demo.delete_note"]
    assert "may delete or overwrite data (destructive)" in asked[0].preview and '"name": "n1"' in asked[0].subject
    read_only = registry_with(stdio_hub, workspace, Permissions(mode="read-only"))
    refused = await read_only.call("demo.add_note", {"name": "a", "text": "b"})
    assert refused.error_kind == "denied" and "read-only" in refused.content


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server():
    port = _free_port()
    process = subprocess.Popen([sys.executable, SERVER, "--http", str(port)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    process.kill()
    process.wait()


@pytest.mark.anyio
async def test_streamable_http_server_lists_calls_and_parallelises(http_server, workspace):
    with hub_for({"web": {"transport": "http", "url": http_server}}, workspace) as hub:
        registry = registry_with(hub, workspace)
        assert "web.lookup" in registry and registry.get("web.lookup").parallel_safe
        executor = ToolExecutor(registry, timeout_s=30)
        assert (await registry.call("web.lookup", {"key": "abc"})).content.startswith("abc -> ABC")
        results = await executor.run([ToolCall(id=f"r{i}", name="web.meet", arguments={"key": f"k{i}"}) for i in range(2)])
        assert [r.content for r in results] == ["k0 met", "k1 met"]


@pytest.mark.anyio
async def test_the_mcp_slash_command_lists_servers_status_and_tools(stdio_hub, workspace):
    from io import StringIO
    from types import SimpleNamespace

    from rich.console import Console

    from iclaw.terminal.commands import SlashCommands, loaded_notes

    registry = registry_with(stdio_hub, workspace)
    registry.mcp = stdio_hub
    out = StringIO()
    agent = SimpleNamespace(registry=registry, project_instructions=None)
    await SlashCommands(SimpleNamespace(agent=agent, console=Console(file=out, width=200))).dispatch("/mcp")
    text = out.getvalue()
    assert "demo  running  stdio" in text and "demo.lookup  [read-only]" in text and "demo.delete_note  [destructive]" in text
    assert loaded_notes(agent) == "MCP: 1/1 server(s) up, 6 tool(s) (/mcp)"
