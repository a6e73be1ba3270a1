"""Running a typer app under the harness's error contract: one line on stderr, an exit code, no traceback.

`iclaw eval` and `iclaw data` both forward their arguments to a typer app through
`run_app`: a command line click cannot parse exits 2, any error the user can fix
(`EvalError`, `IclawError`) exits 1, Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer
from iclaw.errors import IclawError

from evals.errors import EvalError

__all__ = ["run_app", "ClickException", "UsageError"]

# NOTE: recent typer vendors click (`typer._click`), so `click.ClickException` is not what
# it raises; the base classes are found through typer's public BadParameter instead.
_CLICK_ERRORS = {c.__name__: c for c in typer.BadParameter.__mro__}
ClickException: type[Exception] = _CLICK_ERRORS["ClickException"]
UsageError: type[Exception] = _CLICK_ERRORS["UsageError"]


def run_app(app: typer.Typer, argv: list[str] | None, prog_name: str, error: Callable[[str], None]) -> int:
    """Run `app` on `argv` (default sys.argv[1:]) and return its exit code; errors go to `error`."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name=prog_name,
                          standalone_mode=False)
    except UsageError as exc:
        error(exc.format_message())  # type: ignore[attr-defined]
        return 2
    except ClickException as exc:
        error(exc.format_message())  # type: ignore[attr-defined]
        return exc.exit_code  # type: ignore[attr-defined]
    except (typer.Abort, KeyboardInterrupt):
        error("interrupted")
        return 130
    except (EvalError, IclawError) as exc:
        error(str(exc))
        return 1
    return rv if isinstance(rv, int) else 0
