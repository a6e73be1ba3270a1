"""Live view of a recipe run: one line per stage (state, minutes) and the running stage's latest log line.

The stages run as subprocesses, so the view polls their log files and, for training
stages, `metrics.jsonl` (step, loss, tok/s) from a refresh thread; it never parses
progress bars. On a non-terminal it prints one line per stage event instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from evals.recipe import STAGES, Recipe, RecipeConfig, StageRecord

__all__ = ["run_recipe"]

_MARK = {"done": "[green]done[/]", "failed": "[red]failed[/]", "pending": "[dim]pending[/]", "skipped": "[dim]skipped[/]"}


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][-120:] if lines else ""


def _training_line(recipe: Recipe, stage: str) -> str:
    metrics = recipe.path("train", stage, "metrics.jsonl")
    line = _last_line(metrics)
    if not line:
        return ""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return ""
    return f"step {row.get('step')}, loss {row.get('loss', 0):.4f}, {row.get('tok_per_s', 0):,.0f} tok/s"


class _View:
    def __init__(self, recipe: Recipe, only: list[str]) -> None:
        self.recipe, self.only = recipe, only
        self.current: str | None = None
        self.started = 0.0
        self.skipped: set[str] = set()

    def event(self, stage: str, what: str, rec: StageRecord) -> None:
        if what == "started":
            self.current, self.started = stage, time.monotonic()
        elif what == "skipped":
            self.skipped.add(stage)
        elif self.current == stage:
            self.current = None

    def __rich__(self) -> Group:
        table = Table.grid(padding=(0, 2))
        for stage in STAGES:
            if self.only and stage not in self.only:
                continue
            rec = self.recipe.state[stage]
            if stage == self.current:
                detail = _training_line(self.recipe, stage) or _last_line(self.recipe.path("logs", f"{stage}.log"))
                table.add_row(Spinner("dots"), stage, f"{(time.monotonic() - self.started) / 60:.1f} min",
                              Text(detail, style="dim"))
            else:
                mark = _MARK["skipped"] if stage in self.skipped else _MARK.get(rec.status, rec.status)
                table.add_row(Text.from_markup(mark), stage, f"{rec.seconds / 60:.1f} min" if rec.seconds else "", "")
        return Group(Text.from_markup(f"[bold]recipe toolchat[/] -> {self.recipe.out}"), table)


def run_recipe(cfg: RecipeConfig, only: list[str], console: Console) -> Path:
    """Run the recipe with a live stage view on a terminal, plain event lines elsewhere."""
    if not console.is_terminal:
        def log(stage: str, what: str, rec: StageRecord) -> None:
            took = f" ({rec.seconds / 60:.1f} min)" if what in ("done", "failed") else ""
            console.print(f"recipe: {stage} {what}{took}", highlight=False)

        return Recipe(cfg, on_event=log).run(only or None)
    view: _View | None = None
    recipe = Recipe(cfg, on_event=lambda *a: view.event(*a) if view else None)
    view = _View(recipe, only)
    with Live(view, console=console, refresh_per_second=2, transient=False):
        return recipe.run(only or None)
