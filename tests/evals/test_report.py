import json

import pytest

from evals.compare import compare, render_comparison
from evals.report import cell_text, render
from evals.store import ResultRecord, RunRecord
from evals.summary import TaskCell, summarize


def make(model: str, outcomes: dict[str, list[str]], epochs: int) -> tuple[RunRecord, list[ResultRecord]]:
    run = RunRecord(id=f"b-{model}-v2", batch="b", suite="tasks", model=model, agent="v2",
                    config={"epochs": epochs, "tasks": sorted(outcomes)})
    results = [
        ResultRecord(run.id, task, e + 1, status, steps=2, tool_calls=1, tokens_in=100, tokens_out=10, wall_s=1.0)
        for task, statuses in outcomes.items() for e, status in enumerate(statuses)
    ]
    return run, results


def test_summary_counts_scores_and_excludes_harness_errors():
    run, results = make("m", {"a": ["passed", "passed"], "b": ["failed", "error"], "c": ["harness_error", "passed"]}, 2)
    s = summarize(run, results)
    assert (s.n, s.successes, s.errors, s.harness_errors) == (5, 3, 1, 1)
    assert s.rate == pytest.approx(3 / 5)
    assert s.tasks["c"].n == 1 and s.tasks["c"].harness_errors == 1
    # pass@2 only over tasks with two scored attempts (a and b): (1 + 0) / 2
    assert s.pass_at[2] == pytest.approx(0.5)
    assert s.pass_at[1] == pytest.approx((1 + 0 + 1) / 3)
    assert s.tokens_in == 500 and s.mean_steps == 2


@pytest.mark.parametrize(
    "cell, epochs, text",
    [
        (TaskCell(n=1, c=1), 1, "pass"),
        (TaskCell(n=1, c=0), 1, "fail"),
        (TaskCell(n=1, c=0, errors=1), 1, "error"),
        (TaskCell(n=0, harness_errors=1), 1, "harness error"),
        (TaskCell(n=3, c=2, errors=1, harness_errors=1), 4, "2/3 (1 err) +1H"),
        (None, 1, "-"),
    ],
)
def test_cell_text(cell, epochs, text):
    assert cell_text(cell, epochs) == text


def test_all_formats_show_tasks_runs_and_summary_rows():
    a = summarize(*make("<model&a>", {"t1": ["passed", "failed"], "t2": ["failed", "failed"]}, 2))
    b = summarize(*make("b", {"t1": ["passed", "passed"], "t2": ["passed", "failed"]}, 2))
    data = json.loads(render([a, b], "json"))
    assert [r["model"] for r in data["runs"]] == ["<model&a>", "b"]
    assert data["runs"][1]["success_rate"] == 0.75 and data["runs"][1]["pass_at_k"]["2"] == 1.0
    assert data["runs"][0]["tasks"]["t1"] == {"n": 2, "successes": 1, "errors": 0, "harness_errors": 0}
    md = render([a, b], "md")
    assert "| t1 | 1/2 | 2/2 |" in md and "**pass^2**" in md and "**95% CI (Wilson)**" in md
    page = render([a, b], "html")
    assert page.startswith("<!doctype html>") and "&lt;model&amp;a&gt; / v2" in page and "<model&a>" not in page
    table = render([a, b], "table")
    assert [c.header for c in table.columns] == ["task", "<model&a> / v2", "b / v2"]


def test_compare_pairs_tasks_and_gives_exact_p_value():
    tasks = [f"t{i}" for i in range(10)]
    a = summarize(*make("a", {t: ["failed"] for t in tasks}, 1))
    b = summarize(*make("b", {t: (["passed"] if i < 8 else ["failed"]) for i, t in enumerate(tasks)}, 1))
    c = compare(a, b)
    assert (c.wins, c.losses, c.ties) == (0, 8, 2)
    assert c.p_value == pytest.approx(2 / 256)
    data = json.loads(render_comparison(c, "json"))
    assert data["b_better"] == 8 and data["tasks"][0] == {"task": "t0", "rate_a": 0.0, "rate_b": 1.0, "delta": 1.0}
    md = render_comparison(c, "md")
    assert "| t0 | 0.0% | 100.0% | +100 pts |" in md and "significant at 5%" in md


def test_compare_lists_unpaired_tasks():
    a = summarize(*make("a", {"x": ["passed"], "y": ["passed"]}, 1))
    b = summarize(*make("b", {"x": ["passed"], "z": ["failed"]}, 1))
    c = compare(a, b)
    assert [r[0] for r in c.rows] == ["x"] and c.only_a == ["y"] and c.only_b == ["z"] and c.p_value == 1.0
