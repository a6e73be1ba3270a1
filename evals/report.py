"""Render run summaries: a rich table, Markdown, JSON or a self-contained HTML page.

Every format shows the same content: one row per task and one column per
(model, agent) run, then the summary rows (success rate with its 95% Wilson interval,
pass@k / pass^k when epochs > 1, means of steps, tool calls, tokens and wall time,
and how many attempts were harness errors and therefore not scored).

This module only formats `RunSummary` objects; it reads neither the store nor the runs.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable

from rich.table import Table

from evals.summary import RunSummary, TaskCell

__all__ = ["FORMATS", "render", "render_table", "cell_text"]

FORMATS = ("table", "md", "json", "html")


def render(summaries: list[RunSummary], fmt: str) -> str | Table:
    """The report in `fmt` (table → a rich Table to print; others → text)."""
    if fmt == "table":
        return render_table(summaries)
    if fmt == "md":
        return _markdown(summaries)
    if fmt == "json":
        return json.dumps({"runs": [s.to_dict() for s in summaries]}, indent=2)
    if fmt == "html":
        return _html(summaries)
    raise ValueError(f"unknown format {fmt!r}")


def cell_text(cell: TaskCell | None, epochs: int) -> str:
    """`pass` / `fail` / `error` for one epoch, `c/n` for several; harness errors as `+hH`."""
    if cell is None:
        return "-"
    if cell.n == 0:
        return "harness error" if cell.harness_errors else "-"
    if epochs == 1 and cell.n == 1:
        text = "pass" if cell.c else ("error" if cell.errors else "fail")
    else:
        text = f"{cell.c}/{cell.n}" + (f" ({cell.errors} err)" if cell.errors else "")
    return text + (f" +{cell.harness_errors}H" if cell.harness_errors else "")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _summary_rows(summaries: list[RunSummary]) -> list[tuple[str, Callable[[RunSummary], str]]]:
    rows: list[tuple[str, Callable[[RunSummary], str]]] = [
        ("success rate", lambda s: f"{_pct(s.rate)} ({s.successes}/{s.n})"),
        ("95% CI (Wilson)", lambda s: f"{_pct(s.ci95[0])} – {_pct(s.ci95[1])}"),
    ]
    max_epochs = max((s.epochs for s in summaries), default=1)
    if max_epochs > 1:
        rows.append(("pass@1", lambda s: _pct(s.pass_at.get(1))))
        rows.append((f"pass@{max_epochs}", lambda s: _pct(s.pass_at.get(max_epochs))))
        rows.append((f"pass^{max_epochs}", lambda s: _pct(s.pass_hat.get(max_epochs))))
    rows += [
        ("steps (mean)", lambda s: f"{s.mean_steps:.1f}"),
        ("tool calls (mean)", lambda s: f"{s.mean_tool_calls:.1f}"),
        ("tokens in / out", lambda s: f"{s.tokens_in} / {s.tokens_out}"),
        ("wall s (mean)", lambda s: f"{s.mean_wall_s:.2f}"),
        ("agent errors", lambda s: str(s.errors)),
        ("harness errors (not scored)", lambda s: str(s.harness_errors)),
    ]
    return rows


def _task_ids(summaries: list[RunSummary]) -> list[str]:
    return sorted({tid for s in summaries for tid in s.tasks})


def render_table(summaries: list[RunSummary]) -> Table:
    table = Table(title="eval results", show_lines=False)
    table.add_column("task", style="bold", no_wrap=True)
    for s in summaries:
        table.add_column(s.label, justify="center")
    for tid in _task_ids(summaries):
        cells = []
        for s in summaries:
            cell = s.tasks.get(tid)
            text = cell_text(cell, s.epochs)
            style = "green" if cell and cell.n and cell.c == cell.n else "red" if cell and cell.n else "yellow"
            cells.append(f"[{style}]{text}[/{style}]")
        table.add_row(tid, *cells)
    table.add_section()
    for label, value in _summary_rows(summaries):
        table.add_row(label, *(value(s) for s in summaries), style="bold" if label == "success rate" else None)
    return table


def _markdown(summaries: list[RunSummary]) -> str:
    header = ["task", *(s.label for s in summaries)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for tid in _task_ids(summaries):
        lines.append("| " + " | ".join([tid, *(cell_text(s.tasks.get(tid), s.epochs) for s in summaries)]) + " |")
    for label, value in _summary_rows(summaries):
        lines.append("| " + " | ".join([f"**{label}**", *(value(s) for s in summaries)]) + " |")
    runs = "\n".join(f"- `{s.run.id}`: model `{s.run.model}`, agent `{s.run.agent}`, "
                     f"suite `{s.run.suite}`, git `{s.run.git_sha or '-'}`, started {s.run.started_at}"
                     for s in summaries)
    return "\n".join(lines) + "\n\n" + runs + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:center}td:first-child{text-align:left}
.pass{background:#d9f2d9}.fail{background:#f8d7d7}.part{background:#fff3cd}.sum td{font-weight:bold}"""


def _html(summaries: list[RunSummary]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(s.label)}</th>" for s in summaries)
    rows = []
    for tid in _task_ids(summaries):
        tds = []
        for s in summaries:
            cell = s.tasks.get(tid)
            cls = "" if not cell or not cell.n else "pass" if cell.c == cell.n else "fail" if cell.c == 0 else "part"
            tds.append(f'<td class="{cls}">{e(cell_text(cell, s.epochs))}</td>')
        rows.append(f"<tr><td>{e(tid)}</td>{''.join(tds)}</tr>")
    for label, value in _summary_rows(summaries):
        rows.append(f'<tr class="sum"><td>{e(label)}</td>' + "".join(f"<td>{e(value(s))}</td>" for s in summaries) + "</tr>")
    runs = "".join(f"<li><code>{e(s.run.id)}</code>: suite <code>{e(s.run.suite)}</code>, "
                   f"git <code>{e(s.run.git_sha or '-')}</code>, started {e(s.run.started_at)}</li>" for s in summaries)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>eval results</title>"
            f"<style>{_CSS}</style></head><body><h1>eval results</h1><table><tr><th>task</th>{head}</tr>"
            f"{''.join(rows)}</table><ul>{runs}</ul></body></html>\n")
