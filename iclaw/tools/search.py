"""Search tools: `glob` (file names) and `grep` (file contents, regular expressions).

Both walk only the workspace, never follow a symlink out of it, skip `.git` and binary
files, and cap their output so one call cannot flood the context.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

import anyio
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
    pattern: str = Field(description="Python regex.")
    path: str = "."
    glob: str | None = Field(None, description="File name filter, e.g. *.py")
    ignore_case: bool = False
    max_matches: int = Field(100, ge=1, le=1000)


def _files(ws: Workspace, start: Path) -> list[Path]:
    if start.is_file():
        return [start]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if ws.contains(Path(os.path.realpath(path))):
                found.append(path)
    return found


def _glob(ws: Workspace, pattern: str) -> str:
    if os.path.isabs(pattern) or ".." in Path(pattern).parts:
        raise SandboxViolation(f"glob pattern {pattern!r} must be relative to the workspace and must not use '..'")
    matches = []
    for path in sorted(ws.root.glob(pattern)):
        real = Path(os.path.realpath(path))
        if ws.contains(real) and ".git" not in path.relative_to(ws.root).parts:
            matches.append(str(path.relative_to(ws.root)) + ("/" if path.is_dir() else ""))
    if not matches:
        return f"no files match {pattern!r}"
    extra = len(matches) - _MAX_RESULTS
    return "\n".join(matches[:_MAX_RESULTS]) + (f"\n[... {extra} more]" if extra > 0 else "")


def _grep(ws: Workspace, args: GrepArgs) -> str:
    try:
        regex = re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
    except re.error as exc:
        raise ToolError(f"invalid regular expression {args.pattern!r}: {exc}", "invalid_arguments") from exc
    start = ws.resolve(args.path)
    lines: list[str] = []
    for path in _files(ws, start):
        if args.glob and not fnmatch.fnmatch(path.name, args.glob):
            continue
        try:
            if path.stat().st_size > _MAX_FILE_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:8192]:
            continue
        rel = path.relative_to(ws.root)
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if regex.search(line):
                lines.append(f"{rel}:{number}: {line[:300]}")
                if len(lines) >= args.max_matches:
                    return "\n".join(lines) + f"\n[stopped at {args.max_matches} matches]"
    return "\n".join(lines) if lines else f"no matches for {args.pattern!r}"


def search_tools(ctx: ToolContext) -> list[Tool]:
    ws, perms = ctx.workspace, ctx.permissions

    async def glob(args: GlobArgs) -> str:
        await perms.check("glob", "read", args.pattern)
        return await anyio.to_thread.run_sync(_glob, ws, args.pattern, abandon_on_cancel=True)

    async def grep(args: GrepArgs) -> str:
        await perms.check("grep", "read", args.path)
        return await anyio.to_thread.run_sync(_grep, ws, args, abandon_on_cancel=True)

    return [
        Tool("glob", "Find files whose path matches a glob pattern.", glob, GlobArgs),
        Tool("grep", "Search file contents for a regex; prints path:line: text.", grep, GrepArgs),
    ]
