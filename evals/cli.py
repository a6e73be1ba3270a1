"""`iclaw eval ...`: run the suite, validate it, and read results back.

`iclaw eval` forwards its arguments here (`main(argv) -> exit code`), imported lazily so
`import iclaw` never imports `evals`. Commands are thin: parse, load, call one library
function, print. Errors a user can fix print as one line (no traceback), exit code 2 for
a command line click cannot parse, 1 for any other error, a run with harness errors or an
invalid suite.
"""

from __future__ import annotations

import asyncio
import io
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from iclaw.atomic import atomic_write_text
from iclaw.command import run_app
from iclaw.errors import IclawError
from iclaw.profile import AgentProfile
from rich.console import Console, RenderableType

from evals.compare import compare, render_comparison
from evals.errors import EvalError, RunNotFound, SpecError
from evals.progress import LiveProgress
from evals.report import FORMATS, render
from evals.runner import RunOptions, Runner
from evals.store import RunRecord, Store
from evals.summary import summarize
from evals.task import Suite, load_suite
from evals.transcript import render_transcript
from evals.validate import render_verdicts, shipped_profiles, validate_suite, verdict_counts
from evals.versions import AgentVersion, ModelVersion, parse_agent_specs, parse_model_specs, split_specs

__all__ = ["main", "app"]


out_console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="""Run the task suite across model and agent versions, and score it.

Examples:

  iclaw eval --validate --suite tasks/

  iclaw eval --suite tasks/ --model oracle --jobs 2

  iclaw eval --suite tasks/ --model smol=ckpt:ckpt/sft --model gpt=http://127.0.0.1:8000/v1 --agent v1,v2 --epochs 3

  iclaw eval report latest --format md

  iclaw eval compare RUN_A RUN_B

  iclaw eval show RUN TASK
""",
)

OutOpt = Annotated[Path, typer.Option("--out", help="Directory for the database and trajectories.")]
DbOpt = Annotated[Path | None, typer.Option("--db", help="Results database (default OUT/evals.db).")]


def _db_path(out: Path, db: Path | None) -> Path:
    return db if db is not None else out / "evals.db"


def _existing_store(out: Path, db: Path | None) -> Store:
    """The database for read-only commands; never creates an empty one."""
    path = _db_path(out, db)
    if not path.is_file():
        raise RunNotFound(f"no results database at {path}; run `iclaw eval --suite tasks/ --model ...` first "
                          "or point --out / --db at one")
    return Store(path)


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    suite: Annotated[Path, typer.Option("--suite", "-s", help="Task directory (or one task file).")] = Path("tasks"),
    model: Annotated[list[str], typer.Option("--model", "-m", metavar="SPEC", help="oracle | null | NAME=URL | NAME=ckpt:PATH; repeat or comma-separate.")] = [],  # noqa: B006
    agent: Annotated[list[str], typer.Option("--agent", "-a", metavar="PROFILE", help="Agent profiles: v1, v2 or YAML paths; repeat or comma-separate (default v2; --validate: every shipped profile).")] = [],  # noqa: B006
    epochs: Annotated[int, typer.Option(min=1, help="Attempts per task (pass@k / pass^k need > 1).")] = 1,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Attempts run concurrently.")] = 1,
    task: Annotated[list[str], typer.Option("--task", "-t", metavar="GLOB", help="Only tasks whose id matches this glob; repeatable.")] = [],  # noqa: B006
    resume: Annotated[str | None, typer.Option(help="Finish a run or batch: skip done attempts, retry harness errors.")] = None,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Run the valid tasks when some task files are broken.")] = False,
    validate: Annotated[bool, typer.Option("--validate", help="Check the suite: oracle passes every task, null passes none.")] = False,
    retries: Annotated[int, typer.Option(min=0, help="Retries of an attempt that hit a harness error.")] = 2,
    temperature: Annotated[float | None, typer.Option(min=0.0, help="Sampling temperature sent to served models (default: the server's).")] = None,
    out: OutOpt = Path("runs"),
    db: DbOpt = None,
) -> int:
    """Run the suite (the default command). Example: iclaw eval --suite tasks/ --model oracle --jobs 2"""
    if ctx.invoked_subcommand is not None:
        return 0
    if validate:
        if model:
            raise SpecError("--validate always runs the oracle and null models; drop --model")
        return _validate(_load(suite, keep_going, task), parse_agent_specs(agent or shipped_profiles()), jobs)
    options = RunOptions(epochs=epochs, jobs=jobs, retries=retries, task_filter=list(task))
    if resume:
        if model:
            raise SpecError("--resume reuses the stored run's models, agents and suite; drop --model")
        with _existing_store(out, db) as store:
            return _resume(store, out, resume, options, keep_going)
    loaded = _load(suite, keep_going, task)  # the suite first, then the models; all before a database exists
    if not model:
        raise SpecError("give at least one --model (oracle, null, NAME=URL or NAME=ckpt:PATH), or --validate")
    models = parse_model_specs(model, temperature)
    agents = parse_agent_specs(agent or ["v2"])
    with Store(_db_path(out, db)) as store:
        return _run(store, out, loaded, models, agents, options)


def _load(suite: Path, keep_going: bool, only: list[str]) -> Suite:
    loaded = load_suite(suite, keep_going=keep_going, only=only or None)
    for broken in loaded.broken:
        err_console.print(f"[yellow]skipped broken task file:[/yellow] {broken}", markup=True, highlight=False)
    if not loaded.tasks:
        raise EvalError(f"{suite}: every task file is broken; nothing to run")
    return loaded


def _execute(runner: Runner, suite: Suite, models: list[ModelVersion], agents: list[AgentVersion],
             runs: list[RunRecord], total: int) -> float:
    started = time.monotonic()

    async def until_done_or_terminated() -> None:
        # SIGTERM cancels the run like Ctrl-C does, so `finally` blocks stop any model
        # server the run started instead of leaving it orphaned.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
        await runner.execute(suite, models, agents, runs)

    with LiveProgress(total, err_console, label=runs[0].batch) as progress:
        runner.on_result = progress.update
        try:
            asyncio.run(until_done_or_terminated())
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise EvalError(f"interrupted; finish it with `iclaw eval --resume {runs[0].batch}`") from None
    return time.monotonic() - started


def _finish(store: Store, runs: list[RunRecord], wall_s: float) -> int:
    summaries = [summarize(r, store.results(r.id)) for r in runs]
    out_console.print(render(summaries, "table"))
    harness = sum(s.harness_errors for s in summaries)
    out_console.print(f"batch {runs[0].batch}: {len(runs)} run(s) in {wall_s:.1f}s wall time; "
                      f"results in {store.path}", highlight=False)
    if harness:
        err_console.print(f"[yellow]{harness} attempt(s) hit harness errors and were not scored; "
                          f"retry them with `iclaw eval --resume {runs[0].batch}`[/yellow]")
        return 1
    return 0


def _run(store: Store, out: Path, suite: Suite, models: list[ModelVersion], agents: list[AgentVersion],
         options: RunOptions) -> int:
    runner = Runner(store, out, options)
    runs = runner.plan(suite, models, agents)
    total = len(runs) * len(suite.tasks) * options.epochs
    return _finish(store, runs, _execute(runner, suite, models, agents, runs, total))


def _resume(store: Store, out: Path, ref: str, options: RunOptions, keep_going: bool) -> int:
    runs = store.resolve(ref)
    first = runs[0].config
    suite = _load(Path(first["suite"]), keep_going, first.get("task_filter") or [])
    stored_ids = list(first["tasks"])
    missing = sorted(set(stored_ids) - {t.id for t in suite.tasks})
    if missing:
        raise EvalError(f"cannot resume {ref}: task(s) {', '.join(missing)} no longer load from {first['suite']}")
    suite.tasks = [t for t in suite.tasks if t.id in stored_ids]
    changed = [t.id for t in suite.tasks if first.get("task_digests", {}).get(t.id) not in (None, t.digest)]
    if changed:
        err_console.print(f"[yellow]note: task(s) changed since the run started: {', '.join(changed)}[/yellow]")
    models = parse_model_specs(list(dict.fromkeys(r.config["model_spec"] for r in runs)), first.get("temperature"))
    # The stored profile, not today's file: a resumed run must finish with the agent it began with.
    agents = list({r.agent: AgentVersion(r.agent, r.config["agent_spec"], AgentProfile.model_validate(
        r.config["agent_profile"])) for r in runs}.values())
    options.epochs = int(first.get("epochs", 1))
    options.task_filter = list(first.get("task_filter") or [])
    runner = Runner(store, out, options)
    todo = {(r.id, t.id, e) for r in runs for t in suite.tasks for e in range(1, options.epochs + 1)}
    for r in runs:
        todo -= {(r.id, x.task_id, x.epoch) for x in store.results(r.id) if x.status != "harness_error"}
    return _finish(store, runs, _execute(runner, suite, models, agents, runs, len(todo)))


def _validate(suite: Suite, agents: list[AgentVersion], jobs: int) -> int:
    started = time.monotonic()
    with LiveProgress(2 * len(suite.tasks) * len(agents), err_console, label="validate") as progress:
        verdicts = asyncio.run(validate_suite(suite, agents, jobs=max(jobs, 1), on_result=progress.update))
    out_console.print(render_verdicts(verdicts))
    bad = {v.task_id for v in verdicts if not v.ok}
    out_console.print(f"{verdict_counts(verdicts)} ({time.monotonic() - started:.1f}s): "
                      f"{'suite valid' if not bad else f'{len(bad)} invalid task(s)'}", highlight=False)
    return 1 if bad else 0


@app.command("recipe")
def recipe_cmd(
    name: Annotated[str, typer.Argument(help="Recipe name (toolchat: teach a model iclaw's tools).")] = "toolchat",
    out: Annotated[Path, typer.Option("--out", help="Run directory: data, checkpoints, evals, report.md.")] = Path("runs/toolchat"),
    base: Annotated[str, typer.Option(help="Base model (pulled name or checkpoint path).")] = "smollm2-135m-instruct",
    suite: Annotated[Path, typer.Option("--suite", "-s", help="Task directory to score on.")] = Path("tasks"),
    n: Annotated[int, typer.Option("--n", min=1, help="Synthetic SFT rows.")] = 400,
    n_pairs: Annotated[int, typer.Option("--n-pairs", min=0, help="Synthetic DPO pairs.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
    budget_min: Annotated[float | None, typer.Option("--budget-min", min=1, help="Fine-tuning budget (SFT + DPO) in minutes; shrinks the epochs to fit.")] = None,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=0, help="LoRA rank (0 = full fine-tune).")] = 0,
    agent: Annotated[list[str], typer.Option("--agent", "-a", metavar="PROFILE", help="Agent profiles to score (default v1,v2).")] = [],  # noqa: B006
    task: Annotated[list[str], typer.Option("--task", "-t", metavar="GLOB", help="Only tasks matching this glob; repeatable.")] = [],  # noqa: B006
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Eval attempts in flight.")] = 2,
    epochs: Annotated[int, typer.Option(min=1, help="Eval attempts per task.")] = 1,
    stage: Annotated[list[str], typer.Option("--stage", metavar="STAGE", help="Run only these stages (base, synth, sft, dpo, int8, eval, report).")] = [],  # noqa: B006
    fast: Annotated[bool, typer.Option("--fast", help="Nano-scale rehearsal of every stage (also DEMO_FAST=1).")] = False,
) -> int:
    """Teach a model iclaw's tools (synthetic data, SFT, DPO, int8) and score every version; resumable.

    Example: iclaw eval recipe toolchat --out runs/toolchat --budget-min 60
    """
    import os

    from evals.recipe import STAGES, RecipeConfig
    from evals.recipe_progress import run_recipe

    if name != "toolchat":
        raise SpecError(f"unknown recipe {name!r}; known: toolchat")
    unknown = [s for s in stage if s not in STAGES]
    if unknown:
        raise SpecError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    cfg = RecipeConfig(out=out, base=base, suite=suite, n_sft=n, n_pairs=n_pairs, seed=seed, budget_min=budget_min,
                       lora_rank=lora_rank, agents=split_specs(agent) or ["v1", "v2"], tasks=list(task), jobs=jobs,
                       epochs=epochs, fast=fast or os.environ.get("DEMO_FAST") == "1")
    report = run_recipe(cfg, list(stage), err_console)
    out_console.print(report.read_text() if report.exists() else "", markup=False, highlight=False)
    return 0


@app.command("report")
def report_cmd(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, batch id, unique prefix, or 'latest'.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | md | json | html")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    out: OutOpt = Path("runs"),
    db: DbOpt = None,
) -> int:
    """Scores of a run or batch. Example: iclaw eval report latest --format html -o report.html"""
    if fmt not in FORMATS:
        raise SpecError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    with _existing_store(out, db) as store:
        runs = store.resolve(run_ref)
        summaries = [summarize(r, store.results(r.id)) for r in runs]
    rendered = render(summaries, fmt)
    _emit(rendered, output)
    return 0


def _emit(rendered: str | RenderableType, output: Path | None) -> None:
    """Print `rendered` (text verbatim, rich renderables formatted), or write it to `output`."""
    if isinstance(rendered, str):
        text = rendered if rendered.endswith("\n") else rendered + "\n"
    elif output is None:
        out_console.print(rendered)
        return
    else:
        capture = Console(file=io.StringIO(), width=160, record=True)
        capture.print(rendered)
        text = capture.export_text()
    if output is None:
        sys.stdout.write(text)
        return
    try:
        atomic_write_text(output, text)
    except OSError as exc:
        raise EvalError(f"cannot write {output}: {exc.strerror}") from exc
    err_console.print(f"wrote {output}", highlight=False)


def _one_run(store: Store, ref: str) -> RunRecord:
    runs = store.resolve(ref)
    if len(runs) > 1:
        raise RunNotFound(f"{ref!r} is a batch of {len(runs)} runs; name one: {', '.join(r.id for r in runs)}")
    return runs[0]


@app.command("compare")
def compare_cmd(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | md | json")] = "table",
    out: OutOpt = Path("runs"),
    db: DbOpt = None,
) -> int:
    """Paired per-task deltas and an exact sign (McNemar) test. Example: iclaw eval compare RUN_A RUN_B"""
    if fmt not in ("table", "md", "json"):
        raise SpecError(f"--format {fmt!r}: use table, md or json")
    with _existing_store(out, db) as store:
        a, b = _one_run(store, run_a), _one_run(store, run_b)
        comparison = compare(summarize(a, store.results(a.id)), summarize(b, store.results(b.id)))
    _emit(render_comparison(comparison, fmt), None)
    return 0


@app.command("show")
def show_cmd(
    run_ref: Annotated[str, typer.Argument(metavar="RUN")],
    task_id: Annotated[str, typer.Argument(metavar="TASK")],
    epoch: Annotated[int | None, typer.Option(help="Only this epoch (default: all).")] = None,
    out: OutOpt = Path("runs"),
    db: DbOpt = None,
) -> int:
    """The transcript of one task (in each run of a batch). Example: iclaw eval show latest csv-top-customer"""
    with _existing_store(out, db) as store:
        runs = store.resolve(run_ref)
        shown = [(run, r) for run in runs for r in store.results(run.id)
                 if r.task_id == task_id and (epoch is None or r.epoch == epoch)]
    if not shown:
        where = runs[0].id if len(runs) == 1 else f"batch {runs[0].batch}"
        raise RunNotFound(f"no result for task {task_id!r}{f' epoch {epoch}' if epoch else ''} in {where}")
    for run, result in shown:
        out_console.print(render_transcript(run, result))
    return 0


def _error(message: str) -> None:
    """One line on stderr, never wrapped (scripts and CI logs grep for it)."""
    err_console.print(f"error: {' '.join(message.split())}", highlight=False, markup=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `iclaw eval`: run the typer app and return its exit code."""
    return run_app(app, argv, "iclaw eval", _error, (EvalError, IclawError))
