"""Running a typer app under the command-line error contract: one line on stderr, an exit
code, never a traceback. `iclaw`, `iclaw eval` and `iclaw data` all run through `run_app`.

A command line click cannot parse exits 2 (the line names the command's `--help`), an
error the user can fix (`IclawError`, or the `errors` a caller adds) exits 1, Ctrl-C exits
130. Knows typer and the error types; nothing about the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from iclaw.errors import IclawError

__all__ = ["run_app", "ClickException", "UsageError"]

# NOTE: recent typer vendors click (`typer._click`), so `click.ClickException` is not what
# it raises; the base classes are found through typer's public BadParameter instead.
_CLICK_ERRORS = {c.__name__: c for c in typer.BadParameter.__mro__}
ClickException: type[Exception] = _CLICK_ERRORS["ClickException"]
UsageError: type[Exception] = _CLICK_ERRORS["UsageError"]


def run_app(
    app: typer.Typer,
    argv: list[str] | None,
    prog_name: str,
    error: Callable[[str], None],
    errors: tuple[type[Exception], ...] = (IclawError,),
) -> int:
    """Run `app` on `argv` (default sys.argv[1:]) and return its exit code; messages go to `error`."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name=prog_name,
                          standalone_mode=False)
    except UsageError as exc:
        ctx = getattr(exc, "ctx", None)
        error(f"{exc.format_message()} (see `{ctx.command_path if ctx else prog_name} --help`)")  # type: ignore[attr-defined]
        return 2
    except ClickException as exc:
        error(exc.format_message())  # type: ignore[attr-defined]
        return exc.exit_code  # type: ignore[attr-defined]
    except (typer.Abort, KeyboardInterrupt):
        error("interrupted")
        return 130
    except errors as exc:
        error(str(exc))
        return 1
    return rv if isinstance(rv, int) else 0
