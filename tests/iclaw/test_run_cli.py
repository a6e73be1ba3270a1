"""`iclaw run` as a script sees it: one JSON object on stdout whatever happens, progress with -v, -h everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from iclaw.cli import main

STEPS = [
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}]},
    {"answer": "391"},
]


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "steps.yaml"
    path.write_text(yaml.safe_dump(STEPS))
    return path


def test_json_on_success_names_the_model_and_base_url(workspace, script, capsys):
    assert main(["run", "17*23?", "-w", str(workspace), "--script", str(script), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "submitted" and result["answer"] == "391"
    assert result["model"] == "scripted:steps.yaml" and result["base_url"] is None and result["profile"] == "v2"


def test_json_on_failure_is_still_one_object_on_stdout(workspace, capsys):
    code = main(["run", "hi", "-w", str(workspace), "--base-url", "http://127.0.0.1:9/v1", "--model", "tiny", "--json"])
    assert code == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    assert result["status"] == "error" and "cannot reach the model endpoint" in result["error"]
    assert result["model"] == "tiny" and result["base_url"] == "http://127.0.0.1:9/v1"


def test_json_on_bad_input_is_an_error_object_too(workspace, script, capsys):
    assert main(["run", "x", "-w", str(workspace), "--script", str(script), "--mode", "yolo", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "error" and "--mode" in result["error"]


def test_verbose_prints_progress_on_stderr_and_the_answer_on_stdout(workspace, script, capsys):
    assert main(["run", "17*23?", "-w", str(workspace), "--script", str(script), "-v"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "391\n"
    err = captured.err
    assert "step 1 · prefill ·" in err and "prompt tokens" in err
    assert "tool calculator" in err and "calculator -> ok" in err
    assert " in · " in err and " out · " in err and "1 tool" in err


def test_a_typo_in_an_override_is_one_line_with_did_you_mean(workspace, script, capsys):
    assert main(["run", "x", "-w", str(workspace), "--script", str(script), "-c", "memory.budget_tokns=10"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean memory.budget_tokens?" in err and "budget_tokens, tokenizer" in err
    assert "site-packages" not in err and "profiles/" not in err and "Extra inputs" not in err


@pytest.mark.parametrize("argv", [[], ["run"], ["sessions"], ["bench"], ["bench", "parallel"], ["bench", "memory"]])
def test_dash_h_is_help_everywhere(argv, capsys):
    assert main([*argv, "-h"]) == 0
    assert "Usage: iclaw" in capsys.readouterr().out
