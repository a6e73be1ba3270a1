"""File tools: `read_file` (line ranges), `write_file`, `edit_file` (exact search/replace), `list_dir`.

Every path goes through the workspace (nothing outside is reachable) and every change
through the permissions (read-only refuses, ask shows a diff first). Writes are atomic.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from iclaw.atomic import atomic_write_text
from iclaw.errors import ToolError
from iclaw.tools.context import ToolContext
from iclaw.tools.tool import Tool
from iclaw.tools.workspace import Workspace

__all__ = ["file_tools"]

_MAX_LIST = 500


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadFileArgs(_Args):
    path: str
    start_line: int = Field(1, ge=1)
    end_line: int | None = Field(None, ge=1)


class WriteFileArgs(_Args):
    path: str
    content: str


class EditFileArgs(_Args):
    path: str
    search: str = Field(description="Exact text; must occur once.")
    replace: str


class ListDirArgs(_Args):
    path: str = "."
    depth: int = Field(1, ge=1, le=4)


def _read_text(path: Path, shown: str) -> str:
    if not path.exists():
        raise ToolError(f"no such file: {shown}")
    if path.is_dir():
        raise ToolError(f"{shown} is a directory; use list_dir")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ToolError(f"{shown} is a binary file ({len(data)} bytes); it cannot be shown as text")
    return data.decode("utf-8", "replace")


def _diff(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}")
    return "".join(lines)


def file_tools(ctx: ToolContext) -> list[Tool]:
    ws, perms = ctx.workspace, ctx.permissions

    async def read_file(args: ReadFileArgs) -> str:
        path = ws.resolve(args.path)
        shown = ws.relative(path)
        await perms.check("read_file", "read", shown)
        lines = _read_text(path, shown).splitlines(keepends=True)
        end = min(args.end_line or len(lines), len(lines))
        if args.start_line > max(len(lines), 1):
            raise ToolError(f"{shown} has {len(lines)} lines; start_line {args.start_line} is past the end", "invalid_arguments")
        text = "".join(lines[args.start_line - 1 : end])
        notes = []
        if args.start_line > 1 or end < len(lines):
            notes.append(f"lines {args.start_line}-{end} of {len(lines)}")
        if len(text) > ctx.max_read_chars:
            text = text[: ctx.max_read_chars]
            notes.append(f"truncated to {ctx.max_read_chars} characters; read a smaller line range")
        return text + (f"\n[{'; '.join(notes)}]" if notes else "")

    async def write_file(args: WriteFileArgs) -> str:
        path = ws.resolve(args.path)
        shown = ws.relative(path)
        if path.is_dir():
            raise ToolError(f"{shown} is a directory")
        old = _read_text(path, shown) if path.exists() else ""
        await perms.check("write_file", "write", shown, _diff(old, args.content, shown) or "(no change)")
        atomic_write_text(path, args.content)
        return f"wrote {len(args.content.encode())} bytes ({args.content.count(chr(10)) + 1} lines) to {shown}"

    async def edit_file(args: EditFileArgs) -> str:
        path = ws.resolve(args.path)
        shown = ws.relative(path)
        old = _read_text(path, shown)
        if not args.search:
            raise ToolError("search text is empty; give the exact text to replace", "invalid_arguments")
        count = old.count(args.search)
        if count == 0:
            raise ToolError(
                f"search text not found in {shown}; read the file and copy the exact text (whitespace matters)",
                "invalid_arguments",
            )
        if count > 1:
            raise ToolError(
                f"search text occurs {count} times in {shown}; include more surrounding lines so it is unique",
                "invalid_arguments",
            )
        new = old.replace(args.search, args.replace, 1)
        await perms.check("edit_file", "write", shown, _diff(old, new, shown))
        atomic_write_text(path, new)
        return f"edited {shown}: replaced {args.search.count(chr(10)) + 1} line(s)"

    async def list_dir(args: ListDirArgs) -> str:
        root = ws.resolve(args.path)
        shown = ws.relative(root)
        await perms.check("list_dir", "read", shown)
        if not root.is_dir():
            raise ToolError(f"{shown} is not a directory")
        out: list[str] = []
        _walk(root, root, args.depth, out)
        if not out:
            return f"{shown} is empty"
        if len(out) > _MAX_LIST:
            out = out[:_MAX_LIST] + [f"[... listing stopped at {_MAX_LIST} entries]"]
        return "\n".join(out)

    return [
        Tool(
            "read_file",
            "Read a text file, or only lines start_line to end_line (inclusive).",
            read_file,
            ReadFileArgs,
            resource=lambda a: _key(ws, a.path),
        ),
        _writer(ws, "write_file", "Create or overwrite a file.", write_file, WriteFileArgs),
        _writer(ws, "edit_file", "Replace the one exact occurrence of search with replace in a file.", edit_file, EditFileArgs),
        Tool("list_dir", "List a directory (file sizes; directories end in /).", list_dir, ListDirArgs),
    ]


def _writer(ws: Workspace, name: str, description: str, fn, args_model) -> Tool:
    """A file-changing tool: not read-only, serialised with other calls on the same path."""
    return Tool(name, description, fn, args_model, read_only=False, parallel_safe=False, resource=lambda a: _key(ws, a.path))


def _key(ws: Workspace, path: str) -> str | None:
    """Conflict key of a file call: its resolved path (None → conflicts with every unsafe call)."""
    try:
        return str(ws.resolve(path))
    except ToolError:
        return None


def _walk(base: Path, current: Path, depth: int, out: list[str]) -> None:
    for entry in sorted(current.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
        if len(out) > _MAX_LIST:
            return
        rel = entry.relative_to(base)
        if entry.is_symlink():
            out.append(f"{rel} -> (symlink)")
        elif entry.is_dir():
            out.append(f"{rel}/")
            if depth > 1 and entry.name != ".git":
                _walk(base, entry, depth - 1, out)
        else:
            out.append(f"{rel} ({entry.stat().st_size} B)")
