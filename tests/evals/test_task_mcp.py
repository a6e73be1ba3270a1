"""Tasks with `mcp_servers:`: the schema, a server started inside the task's sandbox, its tools
used by the agent, and a server that cannot start as a harness error."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from iclaw.providers import ScriptedModel
from iclaw.tools.landlock import abi_version

from evals.attempt import Attempt, run_attempt
from evals.errors import HarnessError, TaskError
from evals.shell import harness_env

from evals_testkit import FuncModel, write_suite

SERVER = textwrap.dedent('''
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    server = MCPServer("notes", log_level="WARNING")
    CODES = {"alpha": "A-42", "beta": "B-7"}

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def lookup(key: str) -> str:
        """The code of a project."""
        return CODES.get(key, "unknown")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def peek(path: str) -> str:
        """Read any file (the sandbox decides what is readable)."""
        try:
            return open(path).read()
        except OSError as exc:
            return f"cannot read: {exc.strerror}"

    server.run()
''')

TASK = """
id: mcp-lookup
category: qa
difficulty: easy
instruction: Use the notes server to look up the code of project alpha. Answer with the code only.
workspace:
  files:
    notes_server.py: {{from: fixtures/notes_server.py}}
tools: [read_file]
mcp_servers:
  notes: {{command: {command}, args: [notes_server.py], startup_timeout_s: 180}}
faults:
  - {{tool: notes.lookup, calls: [99], error: "never reached"}}
checks:
  - {{type: answer, contains: "A-42"}}
"""


def last_tool_output(messages: list[dict]) -> str:
    return [m for m in messages if m["role"] == "tool"][-1]["content"]


def run(task, steps, agent, tmp_path):
    attempt = Attempt("run-1", task, FuncModel(make=lambda t: ScriptedModel(steps)), agent, 1, tmp_path / "traj.jsonl")
    return asyncio.run(run_attempt(attempt, harness_env()))


def test_the_schema_accepts_commands_and_names_what_is_wrong(tmp_path):
    suite = write_suite(tmp_path / "ok", {"mcp-lookup": TASK.format(command="python")}, {"notes_server.py": SERVER})
    [task] = suite.tasks
    assert task.mcp_servers["notes"].command == "python" and task.mcp_servers["notes"].transport == "stdio"
    bad = {
        "transport: ftp": ("mcp_servers.notes.transport: unknown transport 'ftp'"),
        "url: http://127.0.0.1:9/mcp": "a task's MCP server is a command (stdio) started in its sandbox",
        "comand: python": "mcp_servers.notes.comand: Extra inputs are not permitted",
    }
    for i, (entry, message) in enumerate(bad.items()):
        text = TASK.format(command="python").replace("{command: python, args: [notes_server.py], startup_timeout_s: 180}", "{" + entry + "}")
        with pytest.raises(TaskError) as info:
            write_suite(tmp_path / f"bad{i}", {"mcp-lookup": text}, {"notes_server.py": SERVER})
        assert message in str(info.value) and "mcp-lookup.yaml" in str(info.value)
    clash = TASK.format(command="python").replace("  notes: {", "  grep: {")
    with pytest.raises(TaskError, match="server 'grep'"):
        write_suite(tmp_path / "clash", {"mcp-lookup": clash}, {"notes_server.py": SERVER})


@pytest.mark.skipif(abi_version() < 1, reason="a task's MCP server starts in the sandbox, which needs Landlock")
def test_the_agent_uses_the_tasks_server_which_runs_in_the_sandbox(tmp_path, v2):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    suite = write_suite(tmp_path / "s", {"mcp-lookup": TASK.format(command="python")}, {"notes_server.py": SERVER})
    outputs = []

    def peek(messages, tools):
        assert {"notes.lookup", "notes.peek", "read_file"} <= {t["function"]["name"] for t in tools}
        outputs.append(last_tool_output(messages))
        return {"tool_calls": [{"name": "notes.peek", "arguments": {"path": str(secret)}}]}

    def answer(messages, tools):
        outputs.append(last_tool_output(messages))
        return {"answer": outputs[0]}

    steps = [{"tool_calls": [{"name": "notes.lookup", "arguments": {"key": "alpha"}}]}, peek, answer]
    record = run(suite.tasks[0], steps, v2, tmp_path)
    assert outputs[0] == "A-42"
    assert "TOP-SECRET" not in outputs[1] and outputs[1].startswith("cannot read")  # Landlock confines the server
    assert record.status == "passed", record.error


def test_a_server_that_cannot_start_is_a_harness_error(tmp_path, v2):
    suite = write_suite(tmp_path / "s", {"mcp-lookup": TASK.format(command="/no/such/server")}, {"notes_server.py": SERVER})
    with pytest.raises(HarnessError) as info:
        run(suite.tasks[0], [{"answer": "x"}], v2, tmp_path)
    assert "mcp_servers:" in str(info.value) and "server 'notes': cannot start" in str(info.value)
