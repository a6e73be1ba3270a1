"""The live progress display of a running eval (rich), fed one result at a time.

Shows attempts done / total, counts of passed, failed, agent errors and harness errors,
and the last finished task. Knows `ResultRecord` and rich; nothing about running.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evals.store import ResultRecord

__all__ = ["LiveProgress"]


class LiveProgress:
    """Context manager: `with LiveProgress(total, console) as p: ... p.update(record)`."""

    def __init__(self, total: int, console: Console, label: str = "eval") -> None:
        self.counts: Counter[str] = Counter()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[last]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(label, total=total, counts=self._counts_text(), last="")

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _counts_text(self) -> str:
        c = self.counts
        return (f"[green]✓{c['passed']}[/green] [red]✗{c['failed']}[/red] "
                f"[red]!{c['error']}[/red] [yellow]H{c['harness_error']}[/yellow]")

    def update(self, record: ResultRecord) -> None:
        self.counts[record.status] += 1
        last = f"{record.task_id}#{record.epoch} {record.status}"
        self._progress.update(self._task, advance=1, counts=self._counts_text(), last=last)
