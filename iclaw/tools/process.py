"""Run one command for a tool: confined, time-limited, output capped, nothing left behind.

Every command starts through the launcher (`iclaw.tools.launcher`), in its own session,
with the workspace as cwd and an environment built from an allow-list (no API keys, HOME =
workspace, a private TMPDIR). Where the kernel offers Landlock the command can read only
the workspace, TMPDIR and the system paths of `iclaw.tools.policy`, write only the first
two, reach no network unless the policy allows it, and signal only its own processes;
the launcher kills every descendant when the command ends. On timeout or cancellation
the launcher is asked to do the same (SIGTERM) — milliseconds — and killed with its group
only if it has not finished after `_CLEANUP_GRACE_S`. Output (stdout and stderr interleaved) keeps its head and tail.

Without Landlock (old kernel, another OS) `run` refuses unless the policy says
`unsafe_shell`. Knows nothing about shells or Python: `run_shell` and `run_python`
decide argv.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import anyio

from iclaw.errors import SandboxViolation
from iclaw.tools import landlock
from iclaw.tools.policy import DEVICES, SandboxPolicy, system_read_paths

__all__ = ["ProcessOutcome", "ProcessRunner", "truncate_middle"]

_LAUNCHER = str(Path(__file__).resolve().with_name("launcher.py"))
# How long the launcher gets to kill and reap the command's processes after SIGTERM. It takes
# milliseconds; only a starved machine needs more. Killing the launcher earlier could let a
# `setsid` process escape (it is in no group of ours), so this is generous on purpose.
_CLEANUP_GRACE_S = 10.0


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

    def __init__(
        self,
        workspace: Path,
        max_output_chars: int = 12_000,
        policy: SandboxPolicy | None = None,
        tmp_parent: Path | None = None,
        use_landlock: bool | None = None,
    ) -> None:
        self.workspace = workspace
        self.max_output_chars = max_output_chars
        self.policy = policy or SandboxPolicy()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="iclaw-tmp-", dir=tmp_parent)).resolve()
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.tmpdir), True)
        self.landlock = landlock.abi_version() > 0 if use_landlock is None else use_landlock

    @property
    def sandbox(self) -> str:
        if self.landlock:
            net = "network allowed" if self.policy.network == "allow" else "no network"
            return f"landlock ABI {landlock.abi_version()} (reads and writes confined to the workspace, {net})"
        return "unconfined (--unsafe-shell)" if self.policy.unsafe_shell else "commands refused (no Landlock)"

    def check_allowed(self, tool: str) -> None:
        """SandboxViolation when commands cannot be confined here and the user did not opt in."""
        if not self.landlock and not self.policy.unsafe_shell:
            raise SandboxViolation(
                f"{tool} is refused: this system has no Landlock (Linux >= 5.13), so a command could read and "
                "change files outside the workspace; pass --unsafe-shell or set permissions.unsafe_shell: true "
                "to run commands unconfined"
            )

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

    def launch_argv(self, argv: list[str]) -> list[str]:
        """`argv` wrapped in the launcher (Linux), with the rules of this runner's policy."""
        if platform.system() != "Linux":
            return argv
        spec = {
            "parent": os.getpid(),
            "confine": self.landlock,
            "read": system_read_paths(),
            "write": [str(self.workspace), str(self.tmpdir)],
            "devices": DEVICES,
            "network": self.policy.network == "allow",
            "limits": self.policy.limits.model_dump(),
        }
        return [sys.executable, "-I", "-S", _LAUNCHER, json.dumps(spec), "--", *argv]

    async def run(self, argv: list[str], timeout_s: float, extra_env: dict[str, str] | None = None) -> ProcessOutcome:
        self.check_allowed("the command")
        process = await anyio.open_process(
            self.launch_argv(argv),
            cwd=str(self.workspace),
            env=self.environment() | (extra_env or {}),
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
            with anyio.CancelScope(shield=True):
                await _stop(process)
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


async def _stop(process: anyio.abc.Process) -> None:
    """Ask the launcher to kill its descendants and exit; kill its whole group if it does not."""
    if process.returncode is None:
        _signal(process.pid, signal.SIGTERM, group=False)
        with anyio.move_on_after(_CLEANUP_GRACE_S):
            await process.wait()
    _signal(process.pid, signal.SIGKILL, group=True)
    await process.aclose()


def _signal(pid: int, signum: int, group: bool) -> None:
    try:
        os.killpg(pid, signum) if group else os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # already gone
