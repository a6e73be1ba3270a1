"""The `iclaw` command line: interactive terminal, headless runs, benchmarks, evals, training data.

Thin commands: parse flags, build settings, call one library function. Errors a user can
cause are printed as one line (`iclaw: error: ...`) and exit 1. `iclaw eval ...` hands
all its arguments to `evals.cli.main` (and `iclaw data ...` to `evals.synth.cli.main`),
imported only when that command runs, so importing this module never imports `evals`
(nor torch or `llm`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import anyio
import typer

from iclaw.agent import Limits
from iclaw.command import run_app
from iclaw.errors import IclawError
from iclaw.mcp.commands import mcp_app
from iclaw.tools.permissions import MODES

__all__ = ["app", "main"]

app = typer.Typer(
    name="iclaw",
    help="A terminal agent for any OpenAI-compatible endpoint. Run without a command for the interactive terminal.",
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every subcommand
)
bench_app = typer.Typer(help="Benchmarks: parallel tool calls, long-session memory.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(mcp_app, name="mcp")

Endpoint = Annotated[Optional[str], typer.Option("--endpoint", "-e", help="Endpoint name from ~/.config/iclaw/config.yaml.")]
BaseUrl = Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")]
Model = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name sent to the endpoint.")]
Profile = Annotated[Optional[str], typer.Option("--profile", "-p", help="Agent profile: v1, v2, a user profile name or a .yaml path.")]
Overrides = Annotated[Optional[list[str]], typer.Option("--set", "-c", metavar="KEY=VALUE", help="Profile override section.field=value (repeatable).")]
Workspace = Annotated[Path, typer.Option("--workspace", "-w", help="Directory the agent works in (its sandbox).")]
Mode = Annotated[Optional[str], typer.Option("--mode", help=f"Permission mode: {', '.join(MODES)} (default: the profile's).")]
Script = Annotated[Optional[Path], typer.Option("--script", help="Replay a scripted model from a YAML/JSON step list (demo, tests).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]
RunJson = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON object (status, answer, steps, tokens, model, base_url, ...; "
                                "status error and the error on failure) instead of the answer alone."),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print progress on stderr: steps, tokens, tok/s, tool calls, retries.")]
UnsafeShell = Annotated[
    bool,
    typer.Option("--unsafe-shell", help="Run shell/Python tools unconfined where the kernel has no Landlock (permissions.unsafe_shell)."),
]
NoAgentsMd = Annotated[bool, typer.Option("--no-agents-md", help="Leave the workspace's AGENTS.md out of the system prompt.")]
Temperature = Annotated[Optional[float], typer.Option("--temperature", min=0.0, help="Sampling temperature (default: the endpoint's, else the profile's sampling.temperature, 0.2).")]
BenchProfiles = Annotated[
    Optional[list[str]], typer.Option("--profile", "-p", metavar="PROFILE", help="Profiles to compare (repeatable; default v1 and v2).")
]


def _settings(
    endpoint, base_url, model, profile, overrides, workspace, mode, script, limits=None, temperature=None, unsafe_shell=False,
    no_agents_md=False,
):
    from iclaw.wiring import AgentSettings

    if mode is not None and mode not in MODES:
        raise IclawError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    if unsafe_shell:
        overrides = [*(overrides or []), "permissions.unsafe_shell=true"]
    return AgentSettings(
        endpoint=endpoint, base_url=base_url, model=model, profile=profile, overrides=overrides,
        workspace=workspace, mode=mode, script=script, limits=limits, temperature=temperature, agents_md=not no_agents_md,
    )


@app.callback(invoke_without_command=True, epilog="Example: iclaw --base-url http://127.0.0.1:8000/v1 --model smollm2-135m-instruct")
def interactive(
    ctx: typer.Context,
    endpoint: Endpoint = None,
    base_url: BaseUrl = None,
    model: Model = None,
    profile: Profile = None,
    overrides: Overrides = None,
    workspace: Workspace = Path("."),
    mode: Mode = None,
    script: Script = None,
    temperature: Temperature = None,
    unsafe_shell: UnsafeShell = False,
    no_agents_md: NoAgentsMd = False,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue a saved session by id (see `iclaw sessions`).")] = None,
) -> None:
    """Start the interactive terminal (when no command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from iclaw.config import data_dir
    from iclaw.session import load_session
    from iclaw.terminal.app import TerminalApp
    from iclaw.wiring import build_agent

    settings = _settings(endpoint, base_url, model, profile, overrides, workspace, mode or "ask", script,
                         temperature=temperature, unsafe_shell=unsafe_shell, no_agents_md=no_agents_md)
    session = load_session(resume) if resume else None
    history = data_dir() / "history"
    history.parent.mkdir(parents=True, exist_ok=True)
    terminal = TerminalApp(
        lambda name, approver: build_agent(settings, name, approver),
        settings.profile_name,
        history_path=history,
        session=session,
    )
    raise typer.Exit(anyio.run(terminal.run))


@app.command(epilog='Example: iclaw run "Which customer in sales.csv has the highest total?" --workspace ./data --profile v2 --json')
def run(
    task: Annotated[str, typer.Argument(help="The task, in words.")],
    endpoint: Endpoint = None,
    base_url: BaseUrl = None,
    model: Model = None,
    profile: Profile = None,
    overrides: Overrides = None,
    workspace: Workspace = Path("."),
    mode: Mode = None,
    script: Script = None,
    temperature: Temperature = None,
    unsafe_shell: UnsafeShell = False,
    no_agents_md: NoAgentsMd = False,
    as_json: RunJson = False,
    verbose: Verbose = False,
    trajectory: Annotated[Optional[Path], typer.Option("--trajectory", help="Write the trajectory JSONL here.")] = None,
    max_steps: Annotated[int, typer.Option(help="Step limit.")] = 30,
    wall_time: Annotated[float, typer.Option("--wall-time", help="Wall-time limit in seconds.")] = 600.0,
    max_tokens: Annotated[Optional[int], typer.Option(help="Token limit (in + out).")] = None,
    tool_timeout: Annotated[float, typer.Option("--tool-timeout", help="Per-call tool timeout in seconds.")] = 60.0,
) -> None:
    """Run one task headless and print the answer alone (exit 0 only when the agent answered).

    The endpoint is asked first what it serves (GET /v1/models), so a down server or a
    wrong model name fails at once. With --json stdout always holds one JSON object, also
    on failure: {"status": "error", "error": ..., "model": ..., "base_url": ...}.
    """
    from iclaw.progress import StderrProgress
    from iclaw.wiring import build_agent

    where: dict = {"model": model, "base_url": base_url, "profile": profile}
    try:
        limits = Limits(max_steps=max_steps, wall_time_s=wall_time, max_tokens=max_tokens, tool_timeout_s=tool_timeout)
        settings = _settings(endpoint, base_url, model, profile, overrides, workspace, mode, script, limits, temperature,
                             unsafe_shell, no_agents_md)
        where = {"model": settings.endpoint.model, "base_url": None if script else settings.endpoint.base_url,
                 "profile": settings.profile_name}
        agent = build_agent(settings, trajectory_path=trajectory)
        if verbose:
            agent.on_event = StderrProgress()
        result = anyio.run(_checked_run, agent, task)
    except IclawError as exc:
        if not as_json:
            raise
        typer.echo(json.dumps({"status": "error", "error": str(exc), **where}, ensure_ascii=False))
        raise typer.Exit(1) from exc
    if as_json:
        where.update(model=getattr(agent.model, "name", where["model"]), profile=agent.profile.name)
        typer.echo(json.dumps({**result.summary(), **where}, ensure_ascii=False))
    elif result.status == "submitted":
        typer.echo(result.answer or "")
    else:
        typer.echo(f"iclaw: {result.status.replace('_', ' ')}: {result.error}", err=True)
    raise typer.Exit(0 if result.status == "submitted" else 3)


async def _checked_run(agent, task: str):
    """Ask the endpoint whether it serves the model (when it can say), then run the task."""
    check = getattr(agent.model, "check_served", None)
    if check is not None:
        await check()
    return await agent.run(task)


@app.command(epilog="Example: iclaw sessions")
def sessions() -> None:
    """List saved interactive sessions (resume one with `iclaw --resume ID`)."""
    import time

    from iclaw.session import list_sessions

    for session_id, mtime, first in list_sessions():
        typer.echo(f"{session_id}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(mtime))}  {first}")


def _show(result: dict, as_json: bool, print_table) -> None:
    if as_json:
        typer.echo(json.dumps(result))
    else:
        print_table(result)


@bench_app.command("parallel", epilog="Example: iclaw bench parallel --repeats 3 --json")
def bench_parallel(
    latency: Annotated[float, typer.Option(help="Latency of each mock call in seconds.")] = 0.5,
    repeats: Annotated[int, typer.Option(min=1, help="Runs per profile (the median is reported).")] = 1,
    profiles: BenchProfiles = None,
    as_json: AsJson = False,
) -> None:
    """8 mock tool calls of 0.5 s in one turn: wall time and steps, v1 against v2."""
    from iclaw.bench.parallel import run_parallel_bench
    from iclaw.bench.report import print_parallel

    _show(anyio.run(run_parallel_bench, latency, repeats, tuple(profiles or ("v1", "v2"))), as_json, print_parallel)


@bench_app.command("memory", epilog="Example: iclaw bench memory --turns 200 --budget 4096 --json")
def bench_memory(
    turns: Annotated[int, typer.Option(min=20, help="Turns in the scripted session.")] = 200,
    budget: Annotated[int, typer.Option(min=512, help="Prompt token budget (memory.budget_tokens).")] = 4096,
    profiles: BenchProfiles = None,
    as_json: AsJson = False,
) -> None:
    """A long scripted session: peak prompt tokens vs the budget, planted facts still quotable at the end."""
    from iclaw.bench.memory import run_memory_bench
    from iclaw.bench.report import print_memory

    _show(anyio.run(run_memory_bench, turns, budget, tuple(profiles or ("v1", "v2"))), as_json, print_memory)


@app.command(
    "eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
    epilog="Example: iclaw eval --suite tasks/ --model oracle",
)
def eval_command(ctx: typer.Context) -> None:
    """Run the eval harness (all arguments go to it; `iclaw eval --help` shows its help)."""
    try:
        from evals.cli import main as evals_main
    except ImportError as exc:
        raise IclawError(f"the eval harness is not installed ({exc}); install the project with pip install -e .") from exc
    raise typer.Exit(evals_main(list(ctx.args)))


@app.command(
    "data",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
    epilog="Example: iclaw data synth --n 400 --out runs/synth/sft.jsonl --pairs runs/synth/pairs.jsonl",
)
def data_command(ctx: typer.Context) -> None:
    """Synthetic tool-use training data (all arguments go to it; `iclaw data --help` shows its help)."""
    try:
        from evals.synth.cli import main as data_main
    except ImportError as exc:
        raise IclawError(f"the data generator is not installed ({exc}); install the project with pip install -e .") from exc
    raise typer.Exit(data_main(list(ctx.args)))


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, print user errors in one line, return the exit code."""
    return run_app(app, argv, "iclaw", lambda message: print(f"iclaw: error: {message}", file=sys.stderr))


if __name__ == "__main__":
    sys.exit(main())
