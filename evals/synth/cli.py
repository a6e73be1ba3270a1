"""`iclaw data ...`: make synthetic tool-use data and look at it.

`iclaw data` forwards its arguments here (`main(argv) -> exit code`), imported lazily like
`iclaw eval`. Errors a user can fix print as one line and exit 1; a command line click
cannot parse exits 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from iclaw.command import run_app
from iclaw.errors import IclawError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evals.errors import EvalError, SpecError
from evals.synth.dataset import SynthOptions, synthesize
from evals.synth.families import FAMILIES
from evals.synth.stats import data_stats, print_stats

__all__ = ["app", "main"]


out_console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="""Synthetic tool-use data made by running iclaw's own tools, for SFT and DPO.

Examples:

  iclaw data synth --n 400 --out runs/synth/sft.jsonl --pairs runs/synth/pairs.jsonl --n-pairs 300

  iclaw data stats runs/synth/sft.jsonl
""",
)


def _csv(value: str | None, default: list[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else default


@app.command(epilog="Example: iclaw data synth --n 400 --out runs/synth/sft.jsonl --pairs runs/synth/pairs.jsonl --n-pairs 300 --seed 0")
def synth(
    n: Annotated[int, typer.Option("--n", min=0, help="Number of SFT rows.")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file for the SFT rows.")],
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="JSONL file for DPO pairs from the same families.")] = None,
    n_pairs: Annotated[Optional[int], typer.Option("--n-pairs", min=0, help="Number of pairs (default: --n).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Base seed; the same seed gives the same files.")] = 0,
    profile: Annotated[str, typer.Option("--profile", help="Agent profiles, comma-separated (their prompts and call styles).")] = "v1,v2",
    families: Annotated[Optional[str], typer.Option("--families", help=f"Comma-separated subset of: {', '.join(FAMILIES)}.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Rollouts in flight at once.")] = 4,
) -> None:
    """Generate SFT rows (and DPO pairs): real workspaces, real tool runs, the agent's own prompts."""
    try:
        options = SynthOptions(
            n=n, n_pairs=(n if n_pairs is None else n_pairs) if pairs is not None else 0, seed=seed,
            profiles=_csv(profile, ["v1", "v2"]), families=_csv(families, list(FAMILIES)), jobs=jobs,
        )
    except ValidationError as exc:
        raise SpecError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from exc
    total = max(options.n, options.n_pairs)
    started = time.perf_counter()
    progress = Progress(TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("[dim]{task.fields[last]}"), console=err_console)
    with progress:
        task = progress.add_task("synth", total=total, last="")
        counts = synthesize(options, out, pairs, on_row=lambda family: progress.update(task, advance=1, last=family))
    elapsed = time.perf_counter() - started
    where = f"{out}" + (f" and {counts['pairs']} pairs to {pairs}" if pairs is not None else "")
    redrawn = f" ({counts['redrawn']} redrawn after a failed expert check)" if counts["redrawn"] else ""
    out_console.print(f"wrote {counts['rows']} rows to {where} in {elapsed:.1f}s{redrawn}")


@app.command(epilog="Example: iclaw data stats runs/synth/sft.jsonl --json")
def stats(
    file: Annotated[Path, typer.Argument(help="A JSONL file written by `iclaw data synth` (rows or pairs).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Family counts, turns, tokens and calls per turn of a data file."""
    result = data_stats(file)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        print_stats(result, out_console)


def _error(message: str) -> None:
    err_console.print(f"iclaw data: error: {message}", markup=False, highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `iclaw data`: run the typer app and return its exit code."""
    return run_app(app, argv, "iclaw data", _error, (EvalError, IclawError))
