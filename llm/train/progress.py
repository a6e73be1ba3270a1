"""The training progress display: a rich bar (step, loss, tok/s, ETA) on a terminal.

Off a terminal (CI, a log file, `torchrun` output) the bar would only add noise, so the
evaluation notes are printed as plain lines to stderr instead.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["TrainProgress"]


class TrainProgress:
    def __init__(self, enabled: bool, total: int, done: int, label: str, main: bool = True) -> None:
        self.enabled = enabled
        self.main = main
        self.console = Console(stderr=True)
        self._bar: Progress | None = None
        if enabled and self.console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[tok_per_s]} tok/s"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._task = self._bar.add_task(label, total=total, completed=done, loss="-", tok_per_s="-")

    def __enter__(self) -> "TrainProgress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, step: int, loss: float, tok_per_s: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, loss=f"{loss:.4f}", tok_per_s=f"{tok_per_s:,.0f}")

    def note(self, text: str, always: bool = False) -> None:
        """Print a line above the bar; `always` prints it on rank 0 even with the display off."""
        if self._bar is not None:
            self._bar.console.print(text, highlight=False)
        elif self.enabled or (always and self.main):
            self.console.print(text, highlight=False)
