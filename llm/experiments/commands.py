"""`llm experiment NAME`: run one research experiment into --out (report.md, CSV, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from llm.errors import ConfigError, did_you_mean

__all__ = ["register"]

NAMES = ("chinchilla", "lr-sweep", "accum-vs-batch", "precision", "moe-ablation")


def experiment_cmd(
    name: str = typer.Argument(..., help=f"One of: {', '.join(NAMES)}."),
    budget_min: float = typer.Option(
        10.0, "--budget-min", min=0.01, help="Wall-clock budget in minutes; scales the grid."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default reports/NAME)."),
    data: Optional[Path] = typer.Option(None, help="Prepared data dir (default: the stdlib corpus, prepared once)."),
    seed: int = typer.Option(1337, help="Seed shared by every run."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads per run (default: all cores)."),
) -> None:
    """Run a training experiment and write report.md, PNG plots and CSV tables.

    Example: llm experiment lr-sweep --budget-min 10 --out reports/lr-sweep
    """
    if name not in NAMES:
        raise ConfigError(f"unknown experiment {name!r}{did_you_mean(name, NAMES)}; choose one of: {', '.join(NAMES)}")
    from llm.experiments import EXPERIMENTS, ExperimentContext, default_data

    log = lambda msg: typer.echo(msg, err=True)  # noqa: E731
    ctx = ExperimentContext(
        name=name,
        data=data or default_data(log),
        out=out or Path("reports") / name,
        budget_min=budget_min,
        seed=seed,
        threads=threads,
        log=log,
    )
    typer.echo(str(EXPERIMENTS[name](ctx)))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("experiment")(experiment_cmd)
