"""The toolchat recipe: its nano rehearsal runs every stage end to end, resumes, and reports honestly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evals.recipe import STAGES, Recipe, RecipeConfig
from evals.recipe_report import CallCounts, call_validity


def _iclaw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "import sys; from iclaw.cli import main; sys.exit(main())", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)


def test_call_validity_counts_bad_blocks_unknown_tools_and_bad_arguments():
    events = [
        {"type": "message", "message": {"role": "assistant", "tool_calls": [{"id": "a"}, {"id": "b"}]}},
        {"type": "message", "message": {"role": "tool", "content": "unknown tool 'reed'; available tools: read_file"}},
        {"type": "message", "message": {"role": "tool", "content": "7312"}},
        {"type": "message", "message": {"role": "user", "content": "Your last reply could not be parsed: bad JSON"}},
        {"type": "message", "message": {"role": "assistant", "tool_calls": [{"id": "c"}]}},
        {"type": "message", "message": {"role": "tool", "content": "invalid arguments for read_file: path missing"}},
    ]
    counts = call_validity(events)
    assert (counts.emitted, counts.invalid) == (4, 3)
    assert CallCounts().rate is None


def test_budget_shrinks_epochs_and_never_grows_them(tmp_path):
    r = Recipe(RecipeConfig(out=tmp_path, budget_min=10))
    assert r._epochs_within_budget(0.75, 10_000, 1.5) == 1.5  # small data: the budget is not binding
    shrunk = r._epochs_within_budget(0.75, 1_000_000, 1.5)
    assert 0 < shrunk < 1.5 and shrunk == pytest.approx(10 * 60 * 0.75 * 150 / 1_000_000, abs=1e-3)
    assert Recipe(RecipeConfig(out=tmp_path))._epochs_within_budget(0.75, 1_000_000, 1.5) == 1.5


def test_unknown_recipe_and_stage_are_one_line_errors(tmp_path):
    r = _iclaw("eval", "recipe", "nosuch", "--out", str(tmp_path))
    assert r.returncode != 0 and "unknown recipe 'nosuch'" in r.stderr and "Traceback" not in r.stderr
    r = _iclaw("eval", "recipe", "toolchat", "--stage", "train", "--out", str(tmp_path))
    assert r.returncode != 0 and "unknown stage(s) train" in r.stderr


@pytest.mark.slow
def test_fast_recipe_runs_every_stage_and_writes_the_report(tmp_path):
    """DEMO_FAST=1: nano base, synth, SFT, DPO, int8, the eval matrix on 3 tasks, report.md."""
    out = tmp_path / "toolchat"
    r = _iclaw("eval", "recipe", "toolchat", "--fast", "--out", str(out), "--jobs", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    state = json.loads((out / "recipe.json").read_text())
    assert [state["stages"][s]["status"] for s in STAGES] == ["done"] * len(STAGES)
    for name in ("sft", "dpo", "dpo-int8"):
        assert (out / "ckpt" / name / "meta.json").exists()
    report = (out / "report.md").read_text()
    # the table has every model x agent, each scored on the 3 tasks
    for model in ("base", "sft", "dpo", "dpo-int8"):
        for agent in ("v1", "v2"):
            assert f"| {model} | {agent} | " in report
    rows = [line for line in report.splitlines() if line.startswith("| base | v1 |")]
    assert rows and "/3 |" in rows[0]
    assert "## Targets" in report and "## Per task" in report and "## Stages" in report
    assert "# toolchat" in r.stdout  # the report is printed at the end
    # a rerun skips every finished stage and changes nothing
    before = (out / "recipe.json").read_text()
    again = _iclaw("eval", "recipe", "toolchat", "--fast", "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("skipped") == len(STAGES)
    assert json.loads((out / "recipe.json").read_text())["stages"] == json.loads(before)["stages"]
