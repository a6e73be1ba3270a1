"""Command tools: `run_shell` (bash) and `run_python`, both run by the `ProcessRunner` sandbox.

The enforcement is the runner's (Landlock, seccomp, limits); where the kernel cannot
confine commands both tools refuse unless the user opted in (`--unsafe-shell`). Before a
shell command runs, `screen_command` refuses what plainly leaves the workspace — `..`
path components, `~` and `$HOME`, absolute paths outside the workspace other than system
locations — a second line of defence with a clear message, trivially bypassed by
computing a path. While the workspace holds a hard link to a file outside it (planted
from outside; Landlock rules paths, so a command could read or write through it), both
tools refuse and say which files to remove.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import anyio
from pydantic import BaseModel, ConfigDict, Field

from iclaw.errors import SandboxViolation, ToolError
from iclaw.tools.context import ToolContext
from iclaw.tools.tool import Tool
from iclaw.tools.workspace import Workspace

__all__ = ["command_tools", "screen_command"]

_DOTDOT = re.compile(r"""(?:^|[\s/'"=:;|&(<>`])\.\.(?=$|[\s/'";|&)<>`])""")
_HOME = re.compile(r"""(?:^|[\s'"=:;|&(<>`])~|\$\{?HOME\b""")
_ABSOLUTE = re.compile(r"""(?:^|[\s'"=:;|&(<>`])(/[^\s'";|&)<>`]*)""")
_SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/opt/", "/etc/alternatives/")
_SYSTEM_FILES = ("/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/zero", "/dev/urandom")


class RunShellArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str
    timeout_s: float | None = Field(None, gt=0)


class RunPythonArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="A script; print what you need.")
    timeout_s: float | None = Field(None, gt=0)


def screen_command(command: str, workspace: Workspace) -> None:
    """Raise `SandboxViolation` for commands that name places outside the workspace."""
    if _DOTDOT.search(command):
        raise SandboxViolation("the command uses '..'; paths must stay inside the workspace (the cwd is its root)")
    if _HOME.search(command):
        raise SandboxViolation("the command refers to a home directory (~ or $HOME); use paths inside the workspace")
    venv = str(Path(sys.prefix)) + "/"
    for match in _ABSOLUTE.finditer(command):
        path = match.group(1)
        if path.startswith("//"):
            continue  # the tail of a URL such as http://host/...
        if path == "/":
            raise SandboxViolation("the command refers to '/'; use paths inside the workspace")
        if path.startswith(_SYSTEM_PREFIXES) or path in _SYSTEM_FILES or path.startswith(venv):
            continue
        if not workspace.contains(Path(os.path.realpath(path))):
            raise SandboxViolation(f"the command refers to {path}, outside the workspace; use relative paths")


def check_no_outside_links(ws: Workspace, tool: str) -> None:
    """SandboxViolation while the workspace holds hard links to files outside it."""
    linked = sorted(ws.relative(p) for p in ws.outside_links())
    if linked:
        names = ", ".join(linked[:3]) + (f" and {len(linked) - 3} more" if len(linked) > 3 else "")
        raise SandboxViolation(
            f"{tool} is refused: {names} {'is a hard link' if len(linked) == 1 else 'are hard links'} to files outside "
            "the workspace, which a command could read or change through them; overwrite them with write_file "
            "or remove them outside iclaw"
        )


def _format(outcome, timeout_s: float) -> str:
    if outcome.timed_out:
        raise ToolError(
            f"timed out after {timeout_s:g}s; the command and its children were killed. Output so far:\n{outcome.output}",
            "timeout",
        )
    body = outcome.output if outcome.output.strip() else "(no output)"
    return f"exit code {outcome.exit_code}\n{body}"


def command_tools(ctx: ToolContext, default_timeout_s: float = 60.0) -> list[Tool]:
    ws, perms, runner = ctx.workspace, ctx.permissions, ctx.runner

    async def prepare(tool: str) -> None:
        runner.check_allowed(tool)
        await anyio.to_thread.run_sync(check_no_outside_links, ws, tool, abandon_on_cancel=True)

    async def run_shell(args: RunShellArgs) -> str:
        await prepare("run_shell")
        screen_command(args.command, ws)
        await perms.check("run_shell", "exec", args.command, f"$ {args.command}")
        timeout = min(args.timeout_s or default_timeout_s, default_timeout_s)
        return _format(await runner.run(["bash", "-c", args.command], timeout), timeout)

    async def run_python(args: RunPythonArgs) -> str:
        await prepare("run_python")
        await perms.check("run_python", "exec", args.code[:200], args.code)
        fd, name = tempfile.mkstemp(prefix="snippet_", suffix=".py", dir=runner.tmpdir)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(args.code)
        script = Path(name)
        timeout = min(args.timeout_s or default_timeout_s, default_timeout_s)
        # PYTHONPATH makes workspace modules importable although the script lives in TMPDIR.
        outcome = await runner.run([sys.executable, str(script)], timeout, {"PYTHONPATH": str(ws.root)})
        script.unlink(missing_ok=True)
        return _format(outcome, timeout)

    return [
        Tool(
            "run_shell",
            "Run a bash command in the workspace; returns the exit code and output.",
            run_shell,
            RunShellArgs,
            read_only=False,
            parallel_safe=False,
        ),
        Tool(
            "run_python",
            "Run Python code in the workspace; returns the exit code and output.",
            run_python,
            RunPythonArgs,
            read_only=False,
            parallel_safe=False,
        ),
    ]
