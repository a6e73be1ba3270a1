"""Declaring MCP servers: config.yaml and .iclaw/mcp.yaml, bad input in one line, `iclaw mcp add|list|remove`,
and a declared server's tool used by `iclaw run`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

from iclaw.cli import main
from iclaw.mcp import load_servers
from iclaw.tools import BUILTIN_TOOLS

SERVER = str(Path(__file__).with_name("mcp_demo_server.py"))


def user_config(data: dict) -> Path:
    path = Path(os.environ["ICLAW_CONFIG_DIR"]) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def project_config(workspace: Path, text: str) -> Path:
    path = workspace / ".iclaw" / "mcp.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_both_files_are_read_and_the_workspace_wins_a_shared_name(workspace):
    user_config({"mcp_servers": {"notes": {"command": "notes-a"}, "web": {"url": "http://127.0.0.1:9/mcp"}}})
    project_config(workspace, "servers:\n  notes: {command: notes-b, args: [--fast]}\n")
    entries, problems = load_servers(workspace, reserved=BUILTIN_TOOLS)
    assert problems == []
    by_name = {e.name: e for e in entries}
    assert by_name["notes"].spec.target() == "notes-b --fast" and by_name["notes"].source.endswith("mcp.yaml")
    assert by_name["web"].spec.transport == "http"


def test_bad_input_is_one_line_naming_file_server_and_field(workspace):
    config = user_config({"mcp_servers": {
        "ftp": {"transport": "ftp", "command": "x"},
        "grep": {"command": "x"},
        "nocmd": {"transport": "stdio"},
        "typo": {"comand": "x"},
        "fine": {"command": "ok"},
    }})
    broken = project_config(workspace, "servers:\n  a: [unclosed\n")
    entries, problems = load_servers(workspace, reserved=BUILTIN_TOOLS)
    assert [e.name for e in entries] == ["fine"]  # the good server survives the bad ones
    assert all("\n" not in p for p in problems) and len(problems) == 5
    text = "\n".join(problems)
    assert f"{config}: server 'ftp': field transport: unknown transport 'ftp'; use one of stdio, http" in text
    assert f"{config}: server 'grep': the name clashes with the built-in tool grep" in text
    assert f"{config}: server 'nocmd': a stdio server needs `command`" in text
    assert f"{config}: server 'typo': field comand: Extra inputs are not permitted" in text
    assert f"{broken}: line 3 invalid YAML" in text or f"{broken}: line 2 invalid YAML" in text


def test_add_list_remove(workspace, capsys):
    assert main(["mcp", "add", "notes", "--env", "NOTES=1", "--", sys.executable, SERVER]) == 0
    assert main(["mcp", "add", "tracker", "--url", "http://127.0.0.1:9/mcp", "--project", "-w", str(workspace)]) == 0
    config = yaml.safe_load((Path(os.environ["ICLAW_CONFIG_DIR"]) / "config.yaml").read_text())
    assert config["mcp_servers"]["notes"] == {"transport": "stdio", "command": sys.executable, "args": [SERVER], "env": {"NOTES": "1"}}
    capsys.readouterr()
    assert main(["mcp", "list", "-w", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert f"notes  stdio  {sys.executable} {SERVER}" in out and "tracker  http  http://127.0.0.1:9/mcp" in out
    config["mcp_servers"]["notes"]["startup_timeout_s"] = 180  # a starved machine may take long to import the SDK
    user_config(config)
    assert main(["mcp", "list", "--check", "-w", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "notes  running" in out and "notes.delete_note  [destructive]" in out and "notes.lookup  [read-only]" in out
    assert "tracker  failed" in out
    assert main(["mcp", "remove", "notes"]) == 0
    assert main(["mcp", "remove", "notes"]) == 1
    assert "declares no server 'notes'" in capsys.readouterr().err
    assert main(["mcp", "add", "grep", "--", "x"]) == 1
    assert main(["mcp", "add", "both", "--url", "http://x/mcp", "--", "cmd"]) == 1
    err = capsys.readouterr().err
    assert "clashes with the built-in tool grep" in err and "either a command after --" in err


def test_iclaw_run_calls_a_declared_server_and_survives_a_broken_one(workspace, tmp_path, capsys, monkeypatch):
    from iclaw import wiring

    built = []
    real = wiring.build_agent
    monkeypatch.setattr(wiring, "build_agent", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    user_config({"mcp_servers": {"demo": {"command": sys.executable, "args": [SERVER], "startup_timeout_s": 180}}})
    project_config(workspace, "servers:\n  bad: {transport: carrier-pigeon, command: x}\n")
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump([
        {"tool_calls": [{"name": "demo.lookup", "arguments": {"key": "abc"}}]},
        {"answer": "done"},
    ]))
    trajectory = tmp_path / "t.jsonl"
    code = main(["run", "look it up", "-w", str(workspace), "--script", str(script), "--json", "--trajectory", str(trajectory)])
    captured = capsys.readouterr()
    built[0].registry.mcp.close()  # iclaw itself stops its servers at exit
    assert code == 0 and json.loads(captured.out)["status"] == "submitted"
    [problem] = [line for line in captured.err.splitlines() if "mcp" in line]
    assert "server 'bad': field transport: unknown transport 'carrier-pigeon'" in problem
    events = [json.loads(line) for line in trajectory.read_text().splitlines()]
    assert "demo.lookup" in events[0]["tools"]
    [tool_message] = [e["message"] for e in events if e["type"] == "message" and e["message"]["role"] == "tool"]
    assert tool_message["content"].startswith("abc -> ABC")
