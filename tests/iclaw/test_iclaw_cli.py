"""The `iclaw` command line: headless runs, one-line errors, eval forwarding, benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from iclaw.cli import main

ORACLE = [
    {"tool_calls": [{"name": "read_file", "arguments": {"path": "sales.csv"}}]},
    {"answer": "Acme Corp"},
]


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "steps.yaml"
    path.write_text(yaml.safe_dump(ORACLE))
    return path


def test_headless_run_with_a_script_prints_json(workspace, script, capsys, tmp_path):
    (workspace / "sales.csv").write_text("name,total\nAcme Corp,100\n")
    trajectory = tmp_path / "t.jsonl"
    code = main(["run", "Top customer?", "--workspace", str(workspace), "--script", str(script),
                 "--profile", "v2", "--json", "--trajectory", str(trajectory)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "submitted" and result["answer"] == "Acme Corp" and result["tool_calls"] == 1
    assert result["profile"] == "v2" and trajectory.exists()


def test_headless_run_plain_output_and_exit_code_for_unfinished_runs(workspace, tmp_path, capsys):
    loop = tmp_path / "loop.yaml"
    loop.write_text(yaml.safe_dump([{"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}] * 5))
    code = main(["run", "x", "--workspace", str(workspace), "--script", str(loop), "--max-steps", "2"])
    assert code == 3
    assert "limits exceeded" in capsys.readouterr().err


def test_unreachable_endpoint_is_one_line_naming_the_url(workspace, isolated_home):
    config = isolated_home / "config" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("default: dead\nendpoints:\n  dead: {base_url: 'http://127.0.0.1:9/v1', model: m, max_retries: 0}\n")
    out = subprocess.run([sys.executable, "-m", "iclaw.cli", "run", "hi", "--workspace", str(workspace)],
                         capture_output=True, text=True, env={**_env(isolated_home)})
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the model endpoint http://127.0.0.1:9/v1/models" in lines[0]
    assert "Traceback" not in out.stderr


def test_malformed_profile_names_the_file(workspace, tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\nmemory: [oops\n")
    assert main(["run", "x", "--workspace", str(workspace), "--profile", str(bad), "--script", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err


def test_bad_mode_and_missing_workspace_are_user_errors(tmp_path, script, capsys):
    assert main(["run", "x", "--mode", "yolo", "--script", str(script)]) == 1
    assert main(["run", "x", "--workspace", str(tmp_path / "nope"), "--script", str(script)]) == 1
    err = capsys.readouterr().err
    assert "--mode" in err and "not an existing directory" in err


def test_eval_forwards_every_argument_unchanged(monkeypatch):
    seen: list[list[str]] = []
    fake = types.ModuleType("evals.cli")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "evals.cli", fake)
    for argv in (["--help"], ["report", "RUN"], ["--suite", "tasks/", "--model", "oracle", "-x"]):
        assert main(["eval", *argv]) == 7
    assert seen == [["--help"], ["report", "RUN"], ["--suite", "tasks/", "--model", "oracle", "-x"]]


def test_every_command_help_shows_an_example(capsys):
    for argv in ([], ["run"], ["sessions"], ["bench", "parallel"], ["bench", "memory"]):
        assert main([*argv, "--help"]) == 0
        assert "Example:" in capsys.readouterr().out, argv


def test_bench_parallel_json_shows_v2_overlapping_calls(capsys):
    assert main(["bench", "parallel", "--latency", "0.01", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    v1, v2 = result["profiles"]["v1"], result["profiles"]["v2"]
    assert v1["complete"] and v2["complete"]
    assert (v1["steps"], v1["max_in_flight"]) == (9, 1)
    assert (v2["steps"], v2["max_in_flight"]) == (2, 8)


def test_bench_memory_table_and_json(capsys):
    assert main(["bench", "memory", "--turns", "40", "--budget", "1536", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    v1, v2 = result["profiles"]["v1"], result["profiles"]["v2"]
    assert v1["within_budget"] and v2["within_budget"]
    assert v2["facts_retained"] == v2["facts_total"] > v1["facts_retained"]
    assert main(["bench", "memory", "--turns", "20", "--budget", "1024"]) == 0
    assert "planted facts" in capsys.readouterr().out


def _env(home: Path) -> dict[str, str]:
    import os

    return {**os.environ, "ICLAW_HOME": str(home / "data"), "ICLAW_CONFIG_DIR": str(home / "config")}
