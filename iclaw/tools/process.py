"""Run one command for a tool: sandboxed, time-limited, output capped.

The command runs in its own session (process group) with the workspace as cwd and a
scrubbed environment (no API keys, HOME = workspace, a private TMPDIR). On timeout or
cancellation the *whole process group* is killed, so `sleep 100 &` cannot outlive it.
Output (stdout and stderr interleaved) keeps its head and tail; the middle is replaced
by a note saying how much was dropped. When Landlock is available the command is started
through the `landlock.py` launcher, which confines its writes to the workspace and TMPDIR.

Knows nothing about shells or Python specifically: `run_shell` and `run_python` decide argv.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import anyio

from iclaw.tools import landlock

__all__ = ["ProcessOutcome", "ProcessRunner", "truncate_middle"]

_LAUNCHER = str(Path(landlock.__file__).resolve())


@dataclass
class ProcessOutcome:
    exit_code: int | None
    output: str
    timed_out: bool


def truncate_middle(text: str, limit: int) -> str:
    """Keep the first and last `limit // 2` characters, with a note about the middle."""
    if len(text) <= limit:
        return text
    half = limit // 2
    dropped = len(text) - 2 * half
    return f"{text[:half]}\n[... {dropped} characters of output omitted ...]\n{text[-half:]}"


class ProcessRunner:
    """Starts commands in one workspace; owns the private TMPDIR (removed when garbage-collected)."""

    def __init__(self, workspace: Path, max_output_chars: int = 12_000, use_landlock: bool | None = None) -> None:
        self.workspace = workspace
        self.max_output_chars = max_output_chars
        self.tmpdir = Path(tempfile.mkdtemp(prefix="iclaw-tmp-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.tmpdir), True)
        self.landlock = landlock.abi_version() > 0 if use_landlock is None else use_landlock

    @property
    def sandbox(self) -> str:
        return "landlock (writes confined to the workspace)" if self.landlock else "static checks only (no Landlock)"

    def environment(self) -> dict[str, str]:
        # The interpreter's own bin dir comes first so `python` and `pytest` mean this environment.
        path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
        return {
            "PATH": path,
            "HOME": str(self.workspace),
            "TMPDIR": str(self.tmpdir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
            "NO_COLOR": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }

    async def run(self, argv: list[str], timeout_s: float, extra_env: dict[str, str] | None = None) -> ProcessOutcome:
        if self.landlock:
            argv = [sys.executable, "-I", "-S", _LAUNCHER, str(self.workspace), str(self.tmpdir), "--", *argv]
        env = self.environment() | (extra_env or {})
        process = await anyio.open_process(
            argv,
            cwd=str(self.workspace),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        head = bytearray()
        tail = bytearray()
        half = self.max_output_chars // 2  # bytes kept at each end
        total = 0
        timed_out = False
        try:
            with anyio.move_on_after(timeout_s) as scope:
                assert process.stdout is not None
                async for chunk in process.stdout:
                    total += len(chunk)
                    if len(head) < half:
                        take = half - len(head)
                        head += chunk[:take]
                        chunk = chunk[take:]
                    if chunk:
                        tail += chunk
                        del tail[: max(0, len(tail) - half)]
                await process.wait()
            timed_out = scope.cancelled_caught
        finally:
            _kill_group(process.pid)
            with anyio.CancelScope(shield=True):
                await process.aclose()
        dropped = total - len(head) - len(tail)
        text = head.decode("utf-8", "replace")
        if dropped:
            text += f"\n[... {dropped} bytes of output omitted ...]\n"
        text += tail.decode("utf-8", "replace")
        return ProcessOutcome(
            exit_code=None if timed_out else process.returncode,
            output=text,
            timed_out=timed_out,
        )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone
