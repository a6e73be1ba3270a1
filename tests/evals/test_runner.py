import asyncio
import time

import pytest

from evals_testkit import FuncModel, write_suite
from iclaw.errors import ModelUnreachable
from iclaw.providers import AssistantTurn, ScriptedModel

from evals.runner import RunOptions, Runner
from evals.store import Store
from evals.summary import summarize

TASK = """
id: {id}
category: qa
difficulty: easy
instruction: Say {word}.
limits: {{max_steps: 3, wall_time_s: {wall}}}
checks:
  - {{type: answer, contains: {word}}}
oracle:
  - answer: {word}
"""


def suite_of(tmp_path, *ids, wall=30):
    return write_suite(tmp_path / "suite", {i: TASK.format(id=i, word=i.split("-")[0], wall=wall) for i in ids})


class Crashing:
    async def complete(self, messages, tools):
        raise RuntimeError("model exploded")


class Blocking:
    async def complete(self, messages, tools):
        time.sleep(2.0)  # blocks its event loop: the agent's own wall-time limit cannot fire
        return AssistantTurn(content="too late")


class Unreachable:
    def __init__(self, counter):
        self.counter = counter

    async def complete(self, messages, tools):
        self.counter.append(1)
        raise ModelUnreachable("http://127.0.0.1:9/v1", "connection refused")


def answer_word(task):
    return ScriptedModel([{"answer": task.id.split("-")[0]}])


def run_all(store, tmp_path, suite, models, agents, **opts):
    runner = Runner(store, tmp_path / "out", RunOptions(**opts))
    runs = runner.plan(suite, models, agents)
    asyncio.run(runner.execute(suite, models, agents, runs))
    return runs


def test_crashing_and_hanging_tasks_do_not_stop_the_suite(tmp_path, v2):
    suite = suite_of(tmp_path, "crash-task", "hang-task", "fine-task", wall=0.3)
    behaviour = {"crash-task": lambda t: Crashing(), "hang-task": lambda t: Blocking()}
    model = FuncModel(make=lambda task: behaviour.get(task.id, answer_word)(task))
    with Store(tmp_path / "db.sqlite") as store:
        (run,) = run_all(store, tmp_path, suite, [model], [v2], jobs=2, hang_grace_s=0.3)
        results = {r.task_id: r for r in store.results(run.id)}
        assert store.run(run.id).finished_at is not None
    assert results["fine-task"].status == "passed"
    assert results["crash-task"].status == "error"
    assert results["crash-task"].error == "agent crashed: RuntimeError: model exploded"
    assert results["hang-task"].status == "error" and results["hang-task"].error.startswith("hung:")


def test_unreachable_model_is_a_retried_harness_error_and_not_scored(tmp_path, v2):
    suite = suite_of(tmp_path, "alpha-task", "beta-task", "gamma-task")
    calls = []
    model = FuncModel(make=lambda task: Unreachable(calls))
    with Store(tmp_path / "db.sqlite") as store:
        (run,) = run_all(store, tmp_path, suite, [model], [v2], jobs=1, retries=2, retry_backoff_s=0)
        results = store.results(run.id)
        summary = summarize(store.run(run.id), results)
    assert [r.status for r in results] == ["harness_error"] * 3
    first = next(r for r in results if r.attempts == 3)
    assert "http://127.0.0.1:9/v1" in first.error  # the URL is named
    skipped = [r for r in results if r is not first]
    assert all(r.error.startswith("skipped: model 'func' unreachable") for r in skipped)
    assert len(calls) == 3  # 1 try + 2 retries, then the model is marked down
    assert summary.n == 0 and summary.harness_errors == 3 and summary.rate is None


def test_results_are_stored_as_they_arrive_and_resume_skips_done_work(tmp_path, v2):
    suite = suite_of(tmp_path, "alpha-task", "beta-task")
    flaky = {"beta-task": 1}  # beta's first attempt finds the model down

    def make(task):
        if flaky.get(task.id):
            flaky[task.id] -= 1
            return Unreachable([])
        return answer_word(task)

    model = FuncModel(make=make)
    seen = []
    with Store(tmp_path / "db.sqlite") as store:
        runner = Runner(store, tmp_path / "out", RunOptions(retries=0), on_result=lambda r: seen.append(
            (r.task_id, r.status, len(store.results(r.run_id)))))
        (run,) = runner.plan(suite, [model], [v2])
        asyncio.run(runner.execute(suite, [model], [v2], [run]))
        assert sorted(s[:2] for s in seen) == [("alpha-task", "passed"), ("beta-task", "harness_error")]
        assert [s[2] for s in seen] == [1, 2]  # each result was in the store when announced

        model.calls.clear()
        asyncio.run(Runner(store, tmp_path / "out", RunOptions(retries=0)).execute(suite, [model], [v2], [run]))
        assert model.calls == ["beta-task"]  # alpha was done; only the harness error is retried
        statuses = {r.task_id: (r.status, r.attempts) for r in store.results(run.id)}
        assert statuses == {"alpha-task": ("passed", 1), "beta-task": ("passed", 1)}
        assert store.run(run.id).finished_at is not None


def test_matrix_of_models_agents_and_epochs(tmp_path, v1, v2):
    suite = suite_of(tmp_path, "alpha-task", "beta-task")
    good = FuncModel(name="good", spec="good", make=answer_word)
    coin = {"n": 0}

    def alternate(task):
        coin["n"] += 1
        return answer_word(task) if coin["n"] % 2 else ScriptedModel([{"answer": "no"}])

    flaky = FuncModel(name="flaky", spec="flaky", make=alternate)
    with Store(tmp_path / "db.sqlite") as store:
        runs = run_all(store, tmp_path, suite, [good, flaky], [v1, v2], epochs=3, jobs=1)
        assert [(r.model, r.agent) for r in runs] == [("good", "v1"), ("good", "v2"), ("flaky", "v1"), ("flaky", "v2")]
        assert len({r.batch for r in runs}) == 1
        for run in runs:
            results = store.results(run.id)
            assert sorted((r.task_id, r.epoch) for r in results) == [
                (t, e) for t in ("alpha-task", "beta-task") for e in (1, 2, 3)
            ]
        good_summary = summarize(runs[0], store.results(runs[0].id))
        assert good_summary.pass_at[3] == 1.0 and good_summary.pass_hat[3] == 1.0
        # jobs=1 runs alpha e1..e3 then beta e1..e3; answers alternate right/wrong:
        # alpha 2/3, beta 1/3.
        flaky_summary = summarize(runs[2], store.results(runs[2].id))
        assert flaky_summary.successes == 3
        assert flaky_summary.pass_at[1] == 0.5
        assert flaky_summary.pass_at[2] == pytest.approx((1.0 + (1 - 1 / 3)) / 2)  # beta: 1 - C(2,2)/C(3,2)
        assert flaky_summary.pass_hat[2] == pytest.approx((1 / 3 + 0.0) / 2)  # alpha: C(2,2)/C(3,2)


def test_a_bug_in_the_harness_is_recorded_as_harness_error_and_the_suite_goes_on(tmp_path, v2):
    suite = suite_of(tmp_path, "alpha-task", "beta-task")

    def make(task):
        if task.id == "alpha-task":
            raise ValueError("broken model factory")
        return answer_word(task)

    with Store(tmp_path / "db.sqlite") as store:
        (run,) = run_all(store, tmp_path, suite, [FuncModel(make=make)], [v2])
        results = {r.task_id: r for r in store.results(run.id)}
    assert results["alpha-task"].status == "harness_error"
    assert results["alpha-task"].error == "harness failure: ValueError: broken model factory"
    assert results["beta-task"].status == "passed"
