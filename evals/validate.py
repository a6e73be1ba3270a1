"""`iclaw eval --validate`: prove every task solvable and not passable by doing nothing.

Runs the built-in `oracle` (each task's reference solution, replayed) and `null` (answers
at once, no tools) over the suite, one epoch each, into a throwaway in-memory store. A
task is valid when the oracle passes it and null does not; a harness error for either is
invalid too (the task could not be shown solvable). Knows the runner and the versions.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from evals.runner import RunOptions, Runner
from evals.store import ResultRecord, Store
from evals.task import Suite
from evals.versions import AgentVersion, NullModel, OracleModel

__all__ = ["TaskVerdict", "validate_suite", "render_verdicts"]


@dataclass
class TaskVerdict:
    task_id: str
    oracle: ResultRecord
    null: ResultRecord

    @property
    def ok(self) -> bool:
        return self.oracle.status == "passed" and self.null.status in ("failed", "error")

    @property
    def problem(self) -> str:
        if self.oracle.status != "passed":
            failed = [c["detail"] for c in self.oracle.checks if not c.get("passed")]
            why = self.oracle.error or "; ".join(failed) or self.oracle.status
            return f"oracle {self.oracle.status}: {why}"
        if self.null.status == "passed":
            return "null passes: a do-nothing agent satisfies every check"
        if self.null.status == "harness_error":
            return f"null harness error: {self.null.error}"
        return ""


async def validate_suite(suite: Suite, agent: AgentVersion, jobs: int = 2, on_result=None) -> list[TaskVerdict]:
    with Store(":memory:") as store, tempfile.TemporaryDirectory(prefix="evals-validate-") as tmp:
        runner = Runner(store, Path(tmp), RunOptions(epochs=1, jobs=jobs, retries=1, retry_backoff_s=0.2), on_result)
        models = [OracleModel(), NullModel()]
        runs = runner.plan(suite, models, [agent])
        await runner.execute(suite, models, [agent], runs)
        oracle_run, null_run = runs
        oracle = {r.task_id: r for r in store.results(oracle_run.id)}
        null = {r.task_id: r for r in store.results(null_run.id)}
    return [TaskVerdict(t.id, oracle[t.id], null[t.id]) for t in suite.tasks]


def render_verdicts(verdicts: list[TaskVerdict]) -> Table:
    table = Table(title="suite validation (oracle must pass, null must fail)")
    table.add_column("task")
    table.add_column("oracle", justify="center")
    table.add_column("null", justify="center")
    table.add_column("verdict")
    for v in verdicts:
        verdict = "[green]ok[/green]" if v.ok else f"[red]INVALID[/red] {v.problem}"
        table.add_row(v.task_id, v.oracle.status, v.null.status, verdict)
    return table
