"""File tools: `read_file` (line ranges), `write_file`, `edit_file` (exact search/replace), `list_dir`.

Every path goes through the workspace (nothing outside is reachable) and every change
through the permissions (read-only refuses, ask shows a diff first). Reads go through
`iclaw.tools.reading` (regular files only, size-checked, hard links from outside refused)
in a worker thread, so no file can stall the event loop. Writes are atomic: they replace
the file, so a hard link to an outside file is cut, never written through.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import anyio
from pydantic import BaseModel, ConfigDict, Field

from iclaw.atomic import atomic_write_text
from iclaw.errors import ToolError
from iclaw.tools.context import ToolContext
from iclaw.tools.reading import read_lines, read_text
from iclaw.tools.tool import Tool
from iclaw.tools.workspace import Workspace

__all__ = ["file_tools", "count_lines"]

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


def count_lines(text: str) -> int:
    """Lines as an editor counts them: one per newline, plus one for a last line without a newline."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def _lines(n: int) -> str:
    return f"{n} line" if n == 1 else f"{n} lines"


def _diff(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}")
    return "".join(lines)


def file_tools(ctx: ToolContext) -> list[Tool]:
    ws, perms = ctx.workspace, ctx.permissions

    async def read_file(args: ReadFileArgs) -> str:
        path = ws.resolve(args.path)
        await perms.check("read_file", "read", ws.relative(path))
        return await _in_thread(read_lines, ws, path, args.start_line, args.end_line, ctx.max_read_chars)

    async def write_file(args: WriteFileArgs) -> str:
        path = ws.resolve(args.path)
        shown = ws.relative(path)
        if path.is_dir():
            raise ToolError(f"{shown} is a directory")
        old = await _in_thread(_old_text, ws, path)
        await perms.check("write_file", "write", shown, _diff(old, args.content, shown) or "(no change)")
        atomic_write_text(path, args.content)
        return f"wrote {len(args.content.encode())} bytes ({_lines(count_lines(args.content))}) to {shown}"

    async def edit_file(args: EditFileArgs) -> str:
        path = ws.resolve(args.path)
        shown = ws.relative(path)
        old = await _in_thread(read_text, ws, path)
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
        return f"edited {shown}: replaced {_lines(count_lines(args.search))} with {_lines(count_lines(args.replace))}"

    async def list_dir(args: ListDirArgs) -> str:
        root = ws.resolve(args.path)
        shown = ws.relative(root)
        await perms.check("list_dir", "read", shown)
        if not root.is_dir():
            raise ToolError(f"{shown} is not a directory")
        out: list[str] = []
        await _in_thread(_walk, root, root, args.depth, out)
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


async def _in_thread(fn, *args):
    """Blocking file work off the event loop; a timed-out call is abandoned, never waited for."""
    return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)


def _old_text(ws: Workspace, path: Path) -> str:
    """What write_file replaces, for the diff: "" when there is no readable text to show."""
    try:
        return read_text(ws, path) if path.exists() else ""
    except ToolError:
        return ""


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
