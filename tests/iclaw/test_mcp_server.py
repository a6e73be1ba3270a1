"""`iclaw mcp serve` driven by the MCP SDK's own client: the eight workspace tools, confined
to the workspace, and the whole sandbox attack corpus failing through it as it fails directly."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from test_sandbox_corpus import API_KEY, ATTACKS, FILE_LIMIT_MB, TIMEOUT_S, _run, _table, arena  # noqa: F401 - arena is a fixture

from iclaw.cli import main
from iclaw.mcp.server import SERVED_TOOLS
from iclaw.tools.landlock import abi_version
from iclaw.tools.tool import ToolResult

ICLAW = str(Path(sys.executable).parent / "iclaw")


def serve_params(workspace: Path, *flags: str, env: dict | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=ICLAW, args=["mcp", "serve", "--workspace", str(workspace), *flags], env=env)


def text(result) -> str:
    return "\n".join(block.text for block in result.content)


@pytest.mark.anyio
async def test_the_eight_tools_are_served_with_their_annotations(sandbox_root, workspace):
    (workspace / "notes.txt").write_text("alpha\nbeta\n")
    async with Client(serve_params(workspace, "--mode", "auto")) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert list(listed) == list(SERVED_TOOLS)
        assert listed["read_file"].annotations.read_only_hint and not listed["read_file"].annotations.destructive_hint
        assert listed["run_shell"].annotations.destructive_hint and not listed["run_shell"].annotations.read_only_hint
        assert listed["read_file"].input_schema["required"] == ["path"]

        wrote = await client.call_tool("write_file", {"path": "out/new.txt", "content": "hello"})
        assert not wrote.is_error and (workspace / "out" / "new.txt").read_text() == "hello"
        read = await client.call_tool("read_file", {"path": "notes.txt"})
        assert not read.is_error and "beta" in text(read)
        grep = await client.call_tool("grep", {"pattern": "alp"})
        assert "notes.txt" in text(grep)

        outside = await client.call_tool("read_file", {"path": "../outside.txt"})
        assert outside.is_error and "outside the workspace" in text(outside)
        escape = await client.call_tool("write_file", {"path": "../outside.txt", "content": "pwned"})
        assert escape.is_error
        bad = await client.call_tool("read_file", {"file": "notes.txt"})
        assert bad.is_error and "invalid arguments for read_file" in text(bad)
        unknown = await client.call_tool("calculator", {"expression": "1+1"})
        assert unknown.is_error and "unknown tool 'calculator'" in text(unknown)
    assert (sandbox_root / "outside.txt").read_text() == "do not touch\n"


@pytest.mark.anyio
async def test_read_only_mode_serves_only_the_reading_tools(workspace):
    async with Client(serve_params(workspace)) as client:  # --mode read-only is the default
        names = [t.name for t in (await client.list_tools()).tools]
        assert names == ["read_file", "list_dir", "glob", "grep"]
        refused = await client.call_tool("write_file", {"path": "x.txt", "content": "x"})
        assert refused.is_error and "unknown tool 'write_file'" in text(refused)
    assert not (workspace / "x.txt").exists()


def test_bad_flags_are_one_line(workspace, tmp_path, capsys):
    assert main(["mcp", "serve", "--workspace", str(workspace), "--mode", "ask"]) == 1
    assert main(["mcp", "serve", "--workspace", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "runs read-only or auto" in err[0] and "no such directory" in err[1]


@pytest.mark.anyio
async def test_streamable_http(workspace):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([ICLAW, "mcp", "serve", "--workspace", str(workspace), "--http", str(port)])
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        (workspace / "a.txt").write_text("over http")
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            assert "read_file" in [t.name for t in (await client.list_tools()).tools]
            assert text(await client.call_tool("read_file", {"path": "a.txt"})).endswith("over http")
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.anyio
@pytest.mark.skipif(abi_version() < 1, reason="this kernel offers no Landlock")
async def test_no_corpus_attack_escapes_through_mcp_serve(arena):  # noqa: F811 - the fixture
    flags = ["--mode", "auto", "--tool-timeout", str(TIMEOUT_S),
             "-c", f"permissions.limits.file_size_mb={FILE_LIMIT_MB}", "-c", "permissions.limits.memory_mb=1024"]
    # The key sits in the server's environment, as it would in a client's that started it.
    async with Client(serve_params(arena.ws, *flags, env={"OPENAI_API_KEY": API_KEY})) as client:

        async def call(tool: str, arguments: dict) -> ToolResult:
            result = await client.call_tool(tool, arguments)
            return ToolResult(ok=not result.is_error, content=text(result))

        abi = abi_version()
        rows = [(a, *(await _run(arena, a, landlock=True, call=call))) for a in ATTACKS if a.needs_abi <= abi]
    print("\n" + _table(f"sandbox corpus through iclaw mcp serve, Landlock ABI {abi}", rows))
    assert [(a.name, detail) for a, outcome, detail in rows if outcome == "ESCAPED"] == []
    assert all(outcome == "blocked" for _, outcome, _ in rows)
