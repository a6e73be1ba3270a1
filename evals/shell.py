"""Processes the harness itself runs: task setup, `command` checks and clean-room test runs.

`python` in a task means the interpreter running the harness (which has pytest), not
whatever comes first on the user's PATH: `harness_env` puts that interpreter's directory
first, and turns off pytest's plugin autoloading (checks use core pytest only). Commands
run in their own process group so a timeout kills their children too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["harness_env", "run_shell", "run_argv", "OUTPUT_TAIL"]

OUTPUT_TAIL = 2000  # characters of command output kept for a report


def harness_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default: os.environ) with this interpreter's bin dir first on PATH."""
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    parts = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    env["PATH"] = os.pathsep.join([bin_dir, *parts])
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    # Checks need core pytest only; third-party plugins found by entry point (hypothesis,
    # schemathesis, ...) can add seconds of start-up to every `command` check.
    env.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return env


async def run_shell(command: str, cwd: Path, env: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
    """Run `command` with /bin/sh in `cwd`: (exit code, or None on timeout; output tail)."""
    proc = await asyncio.create_subprocess_shell(command, **_spawn_args(cwd, env))
    return await _collect(proc, timeout_s)


async def run_argv(argv: Sequence[str], cwd: Path, env: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
    """Run `argv` without a shell in `cwd`: (exit code, or None on timeout; output tail)."""
    proc = await asyncio.create_subprocess_exec(*argv, **_spawn_args(cwd, env))
    return await _collect(proc, timeout_s)


def _spawn_args(cwd: Path, env: dict[str, str]) -> dict:
    return dict(
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


async def _collect(proc: asyncio.subprocess.Process, timeout_s: float) -> tuple[int | None, str]:
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return None, ""
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    return proc.returncode, out.decode("utf-8", "replace")[-OUTPUT_TAIL:]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
