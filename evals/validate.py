"""`iclaw eval --validate`: prove every task solvable and not passable by doing nothing.

Runs the built-in `oracle` (each task's reference solution, replayed) and `null` (answers
at once, no tools) over the suite under each agent profile (by default every profile
iclaw ships, so an oracle that only works when several calls run in one turn is caught),
one epoch each, into a throwaway in-memory store. A task is valid when, under every
profile, the oracle passes it and null does not; a harness error for either is invalid
too (the task could not be shown solvable). Knows the runner and the versions.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from iclaw.profile import BUILTIN_DIR
from rich.table import Table

from evals.runner import RunOptions, Runner
from evals.store import ResultRecord, Store
from evals.task import Suite
from evals.versions import AgentVersion, NullModel, OracleModel

__all__ = ["TaskVerdict", "validate_suite", "render_verdicts", "verdict_counts", "shipped_profiles"]


def shipped_profiles() -> list[str]:
    """The agent profiles iclaw ships (v1, v2, ...): what `--validate` checks by default."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


@dataclass
class TaskVerdict:
    task_id: str
    agent: str
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
            return f"oracle {self.oracle.status} under {self.agent}: {why}"
        if self.null.status == "passed":
            return f"null passes under {self.agent}: a do-nothing agent satisfies every check"
        if self.null.status == "harness_error":
            return f"null harness error under {self.agent}: {self.null.error}"
        return ""


async def validate_suite(suite: Suite, agents: list[AgentVersion], jobs: int = 2, on_result=None) -> list[TaskVerdict]:
    """One verdict per (task, agent), in suite order then agent order."""
    with Store(":memory:") as store, tempfile.TemporaryDirectory(prefix="evals-validate-") as tmp:
        runner = Runner(store, Path(tmp), RunOptions(epochs=1, jobs=jobs, retries=1, retry_backoff_s=0.2), on_result)
        models = [OracleModel(), NullModel()]
        runs = runner.plan(suite, models, agents)
        await runner.execute(suite, models, agents, runs)
        results = {(run.model, run.agent): {r.task_id: r for r in store.results(run.id)} for run in runs}
    return [
        TaskVerdict(t.id, a.name, results[("oracle", a.name)][t.id], results[("null", a.name)][t.id])
        for t in suite.tasks for a in agents
    ]


def render_verdicts(verdicts: list[TaskVerdict]) -> Table:
    agents = list(dict.fromkeys(v.agent for v in verdicts))
    table = Table(title="suite validation (under every profile: oracle must pass, null must fail)")
    table.add_column("task")
    for agent in agents:
        table.add_column(f"oracle {agent}", justify="center")
        table.add_column(f"null {agent}", justify="center")
    table.add_column("verdict")
    by_task: dict[str, list[TaskVerdict]] = {}
    for v in verdicts:
        by_task.setdefault(v.task_id, []).append(v)
    for task_id, row in by_task.items():
        cells = [status for v in row for status in (v.oracle.status, v.null.status)]
        bad = [v.problem for v in row if not v.ok]
        table.add_row(task_id, *cells, "[green]ok[/green]" if not bad else "[red]INVALID[/red] " + "; ".join(bad))
    return table


def verdict_counts(verdicts: list[TaskVerdict]) -> str:
    """'v1: oracle passes 20/20, null passes 0/20; v2: ...' — one clause per agent."""
    parts = []
    for agent in dict.fromkeys(v.agent for v in verdicts):
        mine = [v for v in verdicts if v.agent == agent]
        oracle = sum(v.oracle.status == "passed" for v in mine)
        null = sum(v.null.status == "passed" for v in mine)
        parts.append(f"{agent}: oracle passes {oracle}/{len(mine)}, null passes {null}/{len(mine)}")
    return "; ".join(parts)
