"""Search tools: `glob` (file names) and `grep` (file contents, regular expressions).

Both walk only the workspace, never follow a symlink out of it, skip `.git`, binary
files, non-regular files and files hard-linked from outside, and cap their output so one
call cannot flood the context. `grep` matches with RE2 (linear time: `(a*)*b` cannot
backtrack for minutes); the few Python-only constructs (backreferences, lookaround) are
refused with a message saying so. Both run in a worker thread that stops at the next
file or line once the call is cancelled (its timeout), so none outlives its call.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import threading
from pathlib import Path

import anyio
import re2
from pydantic import BaseModel, ConfigDict, Field

from iclaw.errors import SandboxViolation, ToolError
from iclaw.tools.context import ToolContext
from iclaw.tools.tool import Tool
from iclaw.tools.workspace import Workspace

__all__ = ["search_tools"]

_MAX_RESULTS = 500
_MAX_FILE_BYTES = 2_000_000


class GlobArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str = Field(description="e.g. **/*.py")


class GrepArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str = Field(description="Regex (RE2 syntax: no backreferences or lookaround).")
    path: str = "."
    glob: str | None = Field(None, description="File name filter, e.g. *.py")
    ignore_case: bool = False
    max_matches: int = Field(100, ge=1, le=1000)


class _Cancelled(Exception):
    """The call was cancelled (timed out) while the worker thread still ran."""


def _files(ws: Workspace, start: Path, stop: threading.Event) -> list[Path]:
    if start.is_file():
        return [start]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(start):
        if stop.is_set():
            raise _Cancelled()
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if ws.contains(Path(os.path.realpath(path))):
                found.append(path)
    return found


def _glob(ws: Workspace, pattern: str, stop: threading.Event) -> str:
    if os.path.isabs(pattern) or ".." in Path(pattern).parts:
        raise SandboxViolation(f"glob pattern {pattern!r} must be relative to the workspace and must not use '..'")
    matches = set()
    for path in ws.root.glob(pattern):
        if stop.is_set():
            raise _Cancelled()
        real = Path(os.path.realpath(path))
        if ws.contains(real) and ".git" not in path.relative_to(ws.root).parts:
            matches.add(str(path.relative_to(ws.root)) + ("/" if path.is_dir() else ""))
    if not matches:
        return f"no files match {pattern!r}"
    ordered = sorted(matches)
    extra = len(ordered) - _MAX_RESULTS
    return "\n".join(ordered[:_MAX_RESULTS]) + (f"\n[... {extra} more]" if extra > 0 else "")


def _compile(pattern: str, ignore_case: bool):
    """An RE2 regex, or ToolError naming what RE2 does not support."""
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ToolError(
            f"invalid regular expression {pattern!r}: {reason} (grep uses RE2: no backreferences or lookaround)",
            "invalid_arguments",
        ) from exc


def _readable(path: Path, outside: set[Path]) -> bytes | None:
    """A small regular file's bytes, or None for anything grep skips."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_FILE_BYTES or path in outside:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError:
        return None
    return None if b"\x00" in data[:8192] else data


def _grep(ws: Workspace, args: GrepArgs, stop: threading.Event) -> str:
    regex = _compile(args.pattern, args.ignore_case)
    start = ws.resolve(args.path)
    outside = set(ws.outside_links())
    lines: list[str] = []
    for path in _files(ws, start, stop):
        if args.glob and not fnmatch.fnmatch(path.name, args.glob):
            continue
        data = _readable(path, outside)
        if data is None:
            continue
        rel = path.relative_to(ws.root)
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if stop.is_set():
                raise _Cancelled()
            if regex.search(line):
                lines.append(f"{rel}:{number}: {line[:300]}")
                if len(lines) >= args.max_matches:
                    return "\n".join(lines) + f"\n[stopped at {args.max_matches} matches]"
    return "\n".join(lines) if lines else f"no matches for {args.pattern!r}"


async def _stoppable(fn, *args) -> str:
    """Run `fn(*args, stop)` in a worker thread; cancelling the call sets `stop`."""
    stop = threading.Event()
    try:
        return await anyio.to_thread.run_sync(fn, *args, stop, abandon_on_cancel=True)
    finally:
        stop.set()


def search_tools(ctx: ToolContext) -> list[Tool]:
    ws, perms = ctx.workspace, ctx.permissions

    async def glob(args: GlobArgs) -> str:
        await perms.check("glob", "read", args.pattern)
        return await _stoppable(_glob, ws, args.pattern)

    async def grep(args: GrepArgs) -> str:
        await perms.check("grep", "read", args.path)
        return await _stoppable(_grep, ws, args)

    return [
        Tool("glob", "Find files whose path matches a glob pattern.", glob, GlobArgs),
        Tool("grep", "Search file contents for a regex; prints path:line: text.", grep, GrepArgs),
    ]
