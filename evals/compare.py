"""Paired comparison of two runs on the same tasks.

For every task both runs scored, the per-task success rates (over epochs) are paired:
A wins a task when its rate is higher, B when lower, otherwise a tie. Ties are dropped
and an exact two-sided sign test on wins vs losses gives the p-value; with one epoch per
task that is exactly McNemar's exact test on the discordant pairs. Pairing over tasks
(not attempts) keeps epochs of one task from counting as independent evidence.

This module knows `RunSummary` and `evals.scoring`; nothing about how runs were made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from evals.scoring import sign_test_p
from evals.summary import RunSummary

__all__ = ["Comparison", "compare", "render_comparison"]


@dataclass
class Comparison:
    a: RunSummary
    b: RunSummary
    rows: list[tuple[str, float, float]] = field(default_factory=list)  # task, rate A, rate B
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)

    @property
    def wins(self) -> int:
        return sum(ra > rb for _, ra, rb in self.rows)

    @property
    def losses(self) -> int:
        return sum(ra < rb for _, ra, rb in self.rows)

    @property
    def ties(self) -> int:
        return len(self.rows) - self.wins - self.losses

    @property
    def p_value(self) -> float:
        return sign_test_p(self.wins, self.losses)

    @property
    def mean_a(self) -> float | None:
        return sum(r[1] for r in self.rows) / len(self.rows) if self.rows else None

    @property
    def mean_b(self) -> float | None:
        return sum(r[2] for r in self.rows) / len(self.rows) if self.rows else None

    def to_dict(self) -> dict:
        return {
            "a": {"run_id": self.a.run.id, "model": self.a.run.model, "agent": self.a.run.agent},
            "b": {"run_id": self.b.run.id, "model": self.b.run.model, "agent": self.b.run.agent},
            "paired_tasks": len(self.rows),
            "mean_rate_a": self.mean_a,
            "mean_rate_b": self.mean_b,
            "a_better": self.wins,
            "b_better": self.losses,
            "ties": self.ties,
            "p_value": self.p_value,
            "tasks": [{"task": t, "rate_a": ra, "rate_b": rb, "delta": rb - ra} for t, ra, rb in self.rows],
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
        }


def compare(a: RunSummary, b: RunSummary) -> Comparison:
    """Pair the tasks both runs scored (n > 0 in each)."""
    result = Comparison(a=a, b=b)
    scored_a = {t for t, c in a.tasks.items() if c.n}
    scored_b = {t for t, c in b.tasks.items() if c.n}
    for task in sorted(scored_a & scored_b):
        result.rows.append((task, a.tasks[task].rate, b.tasks[task].rate))  # type: ignore[arg-type]
    result.only_a = sorted(scored_a - scored_b)
    result.only_b = sorted(scored_b - scored_a)
    return result


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _verdict(c: Comparison) -> str:
    if not c.rows:
        return "no task was scored in both runs"
    if c.wins == c.losses:
        return f"no difference ({c.wins} tasks each way, p = {c.p_value:.3g})"
    better = "A" if c.wins > c.losses else "B"
    strength = "significant at 5%" if c.p_value < 0.05 else "not significant at 5%"
    return f"{better} better on {max(c.wins, c.losses)} vs {min(c.wins, c.losses)} tasks, p = {c.p_value:.3g} ({strength})"


def render_comparison(c: Comparison, fmt: str) -> str | RenderableType:
    if fmt == "json":
        return json.dumps(c.to_dict(), indent=2)
    head = [f"A = {c.a.run.id} ({c.a.label})", f"B = {c.b.run.id} ({c.b.label})"]
    changed = [(t, ra, rb) for t, ra, rb in c.rows if ra != rb]
    summary = [
        ("paired tasks", str(len(c.rows))),
        ("mean success A → B", f"{_pct(c.mean_a)} → {_pct(c.mean_b)}"),
        ("A better / B better / ties", f"{c.wins} / {c.losses} / {c.ties}"),
        ("exact sign test (McNemar)", f"p = {c.p_value:.4g}"),
    ]
    if c.only_a or c.only_b:
        summary.append(("unpaired tasks", f"{len(c.only_a)} only in A, {len(c.only_b)} only in B"))
    if fmt == "md":
        lines = [f"- {h}" for h in head] + ["", "| task | A | B | delta |", "|---|---|---|---|"]
        lines += [f"| {t} | {_pct(ra)} | {_pct(rb)} | {100 * (rb - ra):+.0f} pts |" for t, ra, rb in changed]
        lines += ["", *(f"- **{k}**: {v}" for k, v in summary), f"- **verdict**: {_verdict(c)}"]
        return "\n".join(lines) + "\n"
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    table = Table(title="\n".join(head), title_justify="left")
    table.add_column("task (changed only)")
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    table.add_column("delta", justify="right")
    for t, ra, rb in changed:
        style = "green" if rb > ra else "red"
        table.add_row(t, _pct(ra), _pct(rb), f"[{style}]{100 * (rb - ra):+.0f} pts[/{style}]")
    table.add_section()
    for k, v in summary:
        table.add_row(k, v, "", "")
    return Group(table, Text(f"verdict: {_verdict(c)}"))
