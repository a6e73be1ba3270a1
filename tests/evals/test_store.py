import sqlite3

import pytest

from evals.errors import RunNotFound, StoreError
from evals.store import ResultRecord, RunRecord, Store


def make_run(run_id: str, batch: str) -> RunRecord:
    return RunRecord(id=run_id, batch=batch, suite="tasks", model="m", agent="v2", config={"epochs": 1, "tasks": ["t"]})


def test_runs_and_results_round_trip(tmp_path):
    path = tmp_path / "sub" / "evals.db"
    with Store(path) as store:
        store.create_run(make_run("b1-m-v2", "b1"))
        store.record(ResultRecord("b1-m-v2", "t", 1, "passed", checks=[{"type": "answer", "passed": True, "detail": "ok"}],
                                  steps=3, tool_calls=2, tokens_in=10, tokens_out=5, wall_s=0.5, answer="42"))
        store.record(ResultRecord("b1-m-v2", "t", 2, "harness_error", error="down"))
    with Store(path) as store:  # reopened: everything was committed
        (run,) = store.resolve("b1-m-v2")
        assert run.config == {"epochs": 1, "tasks": ["t"]} and run.batch == "b1"
        first, second = store.results("b1-m-v2")
        assert (first.status, first.success, first.steps, first.answer, first.checks[0]["detail"]) == ("passed", True, 3, "42", "ok")
        assert (second.status, second.success) == ("harness_error", None)
        # re-recording the same (run, task, epoch) replaces it (resume after a harness error)
        store.record(ResultRecord("b1-m-v2", "t", 2, "failed"))
        assert [r.status for r in store.results("b1-m-v2")] == ["passed", "failed"]
    rows = sqlite3.connect(path).execute("SELECT success FROM results ORDER BY epoch").fetchall()
    assert rows == [(1,), (0,)]


def test_resolve_by_batch_prefix_and_latest(tmp_path):
    with Store(tmp_path / "e.db") as store:
        for run_id, batch in [("b1-a-v1", "b1"), ("b1-a-v2", "b1"), ("b2-a-v1", "b2")]:
            store.create_run(make_run(run_id, batch))
        assert [r.id for r in store.resolve("b1")] == ["b1-a-v1", "b1-a-v2"]
        assert [r.id for r in store.resolve("latest")] == ["b2-a-v1"]
        assert [r.id for r in store.resolve("b2-a")] == ["b2-a-v1"]  # unique prefix
        with pytest.raises(RunNotFound, match="ambiguous"):
            store.resolve("b")
        with pytest.raises(RunNotFound, match="no run or batch 'zzz'"):
            store.resolve("zzz")
        with pytest.raises(RunNotFound, match="no run 'zzz'"):
            store.run("zzz")


def test_latest_on_an_empty_store_says_how_to_start(tmp_path):
    with Store(tmp_path / "e.db") as store, pytest.raises(RunNotFound, match="iclaw eval --suite"):
        store.resolve("latest")


def test_unopenable_database_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open results database"):
        Store(tmp_path / "file" / "evals.db")
