"""The recipe's `report.md`: where the gain came from, read back from the stored eval and training runs.

Sections: the success table (model x agent, Wilson 95% intervals, steps and tokens per
solved task, tool-call validity), the targets met or missed, per-task results, training
facts and stage timings, the curves, and for every task the best model still fails, its
status and what the checks said. Everything is computed from `OUT/evals/evals.db`, the
trajectories it points to, and `OUT/train/*/summary.json`; nothing is typed in by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from iclaw.atomic import atomic_write_text

from evals.store import ResultRecord, Store
from evals.summary import RunSummary, summarize
from evals.transcript import read_events

if TYPE_CHECKING:
    from evals.recipe import Recipe

__all__ = ["write_report", "call_validity", "CallCounts", "success_table"]

_INVALID_PREFIXES = ("unknown tool", "invalid arguments for")
_FORMAT_ERROR = "Your last reply could not be parsed"


@dataclass
class CallCounts:
    emitted: int = 0  # tool calls the model wrote, plus replies whose tool-call block did not parse
    invalid: int = 0  # unparseable blocks, unknown tools, arguments that fail the schema

    @property
    def rate(self) -> float | None:
        return (self.emitted - self.invalid) / self.emitted if self.emitted else None

    def add(self, other: "CallCounts") -> None:
        self.emitted += other.emitted
        self.invalid += other.invalid


def call_validity(events: list[dict]) -> CallCounts:
    """Tool calls in one trajectory and how many of them the harness could not run as written."""
    counts = CallCounts()
    for e in events:
        msg = e.get("message") if e.get("type") == "message" else None
        if not isinstance(msg, dict):
            continue
        content = msg.get("content") if isinstance(msg.get("content"), str) else ""
        if msg.get("role") == "assistant":
            counts.emitted += len(msg.get("tool_calls") or [])
        elif msg.get("role") == "tool" and content.startswith(_INVALID_PREFIXES):
            counts.invalid += 1
        elif msg.get("role") == "user" and content.startswith(_FORMAT_ERROR):
            counts.emitted += 1
            counts.invalid += 1
    return counts


def _validity(results: list[ResultRecord]) -> CallCounts:
    total = CallCounts()
    for r in results:
        if r.trajectory_path and Path(r.trajectory_path).exists():
            total.add(call_validity(read_events(Path(r.trajectory_path))))
    return total


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def success_table(rows: list[tuple[RunSummary, list[ResultRecord]]]) -> list[str]:
    lines = [
        "| model | agent | solved | success (95% CI) | steps / solved | tokens in+out / solved | tool calls valid |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, results in rows:
        solved = [r for r in results if r.status == "passed"]
        per = lambda f: f"{sum(f(r) for r in solved) / len(solved):,.1f}" if solved else "-"  # noqa: E731
        v = _validity(results)
        lines.append(
            f"| {s.run.model} | {s.run.agent} | {s.successes}/{s.n} | {_pct(s.rate)} "
            f"({_pct(s.ci95[0])}-{_pct(s.ci95[1])}) | {per(lambda r: r.steps)} | "
            f"{per(lambda r: r.tokens_in + r.tokens_out)} | {_pct(v.rate)} ({v.emitted - v.invalid}/{v.emitted}) |"
        )
    return lines


def _rate(summaries: dict[tuple[str, str], RunSummary], model: str, agent: str) -> float | None:
    s = summaries.get((model, agent))
    return s.rate if s else None


def _targets(summaries: dict[tuple[str, str], RunSummary], validity: CallCounts) -> list[str]:
    def fmt(ok: bool | None, text: str) -> str:
        mark = "n/a" if ok is None else ("met" if ok else "**missed**")
        return f"- {text}: {mark}"

    r = lambda m, a: _rate(summaries, m, a)  # noqa: E731
    best = max((m for m in ("sft", "dpo") if r(m, "v2") is not None), key=lambda m: r(m, "v2"), default=None)
    out = []
    out.append(fmt(None if best is None else r(best, "v2") >= 0.5,
                   f"fine-tuned model with v2 solves >= 50% ({best or '-'}: {_pct(r(best, 'v2') if best else None)})"))
    if best and r(best, "v1") is not None:
        out.append(fmt(r(best, "v2") >= r(best, "v1") + 0.15,
                       f"v2 >= v1 + 15 points on {best} ({_pct(r(best, 'v2'))} vs {_pct(r(best, 'v1'))})"))
    for agent in ("v2", "v1"):
        trio = [r(m, agent) for m in ("dpo", "sft", "base")]
        if None not in trio:
            flat = " - trivially, all equal" if len(set(trio)) == 1 else ""
            out.append(fmt(trio[0] >= trio[1] >= trio[2], f"DPO >= SFT >= base under {agent} "
                           f"({' / '.join(_pct(x) for x in trio)}{flat})"))
    for agent in ("v2", "v1"):
        a, b = r("dpo-int8", agent), r("dpo", agent)
        if a is not None and b is not None:
            out.append(fmt(abs(a - b) <= 0.05, f"int8 within 5 points of its float version under {agent} "
                           f"({_pct(a)} vs {_pct(b)})"))
    out.append(fmt(None if validity.rate is None else validity.rate >= 0.95,
                   f">= 95% of emitted tool calls parse and validate (fine-tuned models: {_pct(validity.rate)})"))
    return out


def _training_facts(recipe: "Recipe") -> list[str]:
    lines = ["| stage | minutes | what |", "|---|---|---|"]
    for stage, rec in recipe.state.items():
        what = ""
        summary = recipe.path("train", stage, "summary.json")
        if summary.exists():
            s = json.loads(summary.read_text())
            what = (f"{s.get('steps')} steps, {s.get('tokens', 0):,} tokens at {s.get('throughput_tok_per_s', 0):,.0f} tok/s, "
                    f"final train loss {s.get('final_train_loss', 0):.3f}")
            if s.get("final_val_loss") is not None:
                what += f", val loss {s['final_val_loss']:.3f}"
            if s.get("peak_rss_mb"):
                what += f", peak RSS {s['peak_rss_mb']:,.0f} MiB"
        if stage == "report":
            continue  # this very stage: still being written
        lines.append(f"| {stage} | {rec.seconds / 60:.1f} | {what or rec.status} |")
    return lines


def _per_task(rows: list[tuple[RunSummary, list[ResultRecord]]]) -> list[str]:
    labels = [f"{s.run.model}/{s.run.agent}" for s, _ in rows]
    tasks = sorted({t for s, _ in rows for t in s.tasks})
    lines = ["| task | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for t in tasks:
        cells = []
        for s, _ in rows:
            c = s.tasks.get(t)
            cells.append("-" if c is None or not c.n else ("pass" if c.c == c.n else f"{c.c}/{c.n}" if c.c else "fail"))
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def _failures(rows: list[tuple[RunSummary, list[ResultRecord]]], best: tuple[str, str] | None) -> list[str]:
    if best is None:
        return []
    lines = []
    for s, results in rows:
        if (s.run.model, s.run.agent) != best:
            continue
        for r in sorted(results, key=lambda x: x.task_id):
            if r.status == "passed":
                continue
            failed = [c for c in r.checks if not c.get("passed")]
            why = "; ".join(str(c.get("detail") or c.get("message") or c.get("type")) for c in failed)[:200]
            answer = (r.answer or "").replace("\n", " ")[:80]
            lines.append(f"- `{r.task_id}`: {r.agent_status or r.status}, {r.steps} steps; answer {answer!r}; "
                         f"checks: {why or r.error or '-'} (transcript: `iclaw eval show {s.run.id} {r.task_id}`)")
    return lines


def write_report(recipe: "Recipe", plot: Path | None) -> Path:
    db = recipe.path("evals", "evals.db")
    batch = recipe.facts.get("eval_batch")
    rows: list[tuple[RunSummary, list[ResultRecord]]] = []
    if db.exists() and batch:
        with Store(db) as store:
            for run in store.runs(str(batch)):
                results = store.results(run.id)
                rows.append((summarize(run, results), results))
    summaries = {(s.run.model, s.run.agent): s for s, _ in rows}
    tuned = CallCounts()
    for s, results in rows:
        if s.run.model != "base":
            tuned.add(_validity(results))
    scored = [(k, s.rate) for k, s in summaries.items() if s.rate is not None and k[0] != "base"]
    best = max(scored, key=lambda kv: kv[1])[0] if scored else None
    cfg = recipe.cfg
    parts = [
        "# toolchat: teaching a small model iclaw's tools",
        "",
        f"Base model `{cfg.base if not cfg.fast else 'nano (fast rehearsal)'}`; {cfg.n_sft if not cfg.fast else 40} "
        f"synthetic SFT rows and {cfg.n_pairs if not cfg.fast else 24} DPO pairs from task families (never the suite's "
        f"own tasks); suite `{cfg.suite}`, agents {', '.join(cfg.agents)}, temperature 0, {cfg.epochs} attempt(s) "
        f"per task; eval batch `{batch}`.",
        "",
        "## Success",
        "",
        *success_table(rows),
        "",
        "## Targets",
        "",
        *_targets(summaries, tuned),
        "",
        "## Per task",
        "",
        *_per_task(rows),
        "",
        "## Stages",
        "",
        *_training_facts(recipe),
        "",
    ]
    if plot is not None:
        parts += ["## Training curves", "", f"![loss]({plot.name})", ""]
    fails = _failures(rows, best)
    if fails:
        parts += [f"## What {best[0]} / {best[1]} still fails", "", *fails, ""]
    parts += ["Reproduce: `iclaw eval recipe toolchat --out " + str(recipe.out) + "` (finished stages are skipped)."]
    path = recipe.path("report.md")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
