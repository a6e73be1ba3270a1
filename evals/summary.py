"""Scores of a run, computed from its stored results.

A `RunSummary` holds what every report shows: the success rate over scored attempts with
its 95% Wilson interval, pass@k and pass^k for k = 1..epochs, and the means of steps,
tool calls, tokens and wall time. Harness errors are counted but never scored: they say
nothing about the model or the agent.

This module knows the store's records and `evals.scoring`; rendering is `evals.report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iclaw.counters import RunCounters

from evals.scoring import mean_over_tasks, pass_at_k, pass_hat_k, wilson_interval
from evals.store import ResultRecord, RunRecord

__all__ = ["TaskCell", "RunSummary", "summarize"]


@dataclass
class TaskCell:
    """One task within one run: scored attempts n, successes c, and what went wrong."""

    n: int = 0
    c: int = 0
    errors: int = 0  # the agent crashed or hung (scored as failures)
    harness_errors: int = 0  # not scored

    @property
    def rate(self) -> float | None:
        return self.c / self.n if self.n else None


@dataclass
class RunSummary(RunCounters):
    """Scores of one run; the `RunCounters` fields are totals over its scored attempts."""

    run: RunRecord
    epochs: int
    tasks: dict[str, TaskCell] = field(default_factory=dict)
    n: int = 0
    successes: int = 0
    errors: int = 0
    harness_errors: int = 0
    ci95: tuple[float, float] = (0.0, 1.0)
    pass_at: dict[int, float | None] = field(default_factory=dict)
    pass_hat: dict[int, float | None] = field(default_factory=dict)
    mean_wall_s: float = 0.0
    total_wall_s: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.run.model} / {self.run.agent}"

    @property
    def rate(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def mean_steps(self) -> float:
        return self.steps / self.n if self.n else 0.0

    @property
    def mean_tool_calls(self) -> float:
        return self.tool_calls / self.n if self.n else 0.0

    def to_dict(self) -> dict:
        return {
            "run_id": self.run.id,
            "batch": self.run.batch,
            "model": self.run.model,
            "agent": self.run.agent,
            "suite": self.run.suite,
            "git_sha": self.run.git_sha,
            "started_at": self.run.started_at,
            "finished_at": self.run.finished_at,
            "epochs": self.epochs,
            "attempts_scored": self.n,
            "successes": self.successes,
            "success_rate": self.rate,
            "ci95": list(self.ci95),
            "pass_at_k": {str(k): v for k, v in self.pass_at.items()},
            "pass_hat_k": {str(k): v for k, v in self.pass_hat.items()},
            "agent_errors": self.errors,
            "harness_errors": self.harness_errors,
            "mean_steps": self.mean_steps,
            "mean_tool_calls": self.mean_tool_calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "mean_wall_s": self.mean_wall_s,
            "total_wall_s": self.total_wall_s,
            "tasks": {
                tid: {"n": t.n, "successes": t.c, "errors": t.errors, "harness_errors": t.harness_errors}
                for tid, t in self.tasks.items()
            },
        }


def summarize(run: RunRecord, results: list[ResultRecord]) -> RunSummary:
    """Scores of `run` from its results (any order; harness errors excluded from scores)."""
    epochs = int(run.config.get("epochs", 1))
    summary = RunSummary(run=run, epochs=epochs)
    for task_id in run.config.get("tasks", []):
        summary.tasks[task_id] = TaskCell()
    scored = []
    for r in results:
        cell = summary.tasks.setdefault(r.task_id, TaskCell())
        if r.status == "harness_error":
            cell.harness_errors += 1
            summary.harness_errors += 1
            continue
        scored.append(r)
        cell.n += 1
        cell.c += r.status == "passed"
        cell.errors += r.status == "error"
    summary.n = len(scored)
    summary.successes = sum(r.status == "passed" for r in scored)
    summary.errors = sum(r.status == "error" for r in scored)
    summary.ci95 = wilson_interval(summary.successes, summary.n)
    counts = [(t.n, t.c) for t in summary.tasks.values()]
    for k in range(1, epochs + 1):
        summary.pass_at[k] = mean_over_tasks(counts, k, pass_at_k)
        summary.pass_hat[k] = mean_over_tasks(counts, k, pass_hat_k)
    for r in scored:
        summary.add(r)
    if scored:
        summary.total_wall_s = sum(r.wall_s for r in scored)
        summary.mean_wall_s = summary.total_wall_s / len(scored)
    return summary
