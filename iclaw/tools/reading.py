"""Reading workspace files without ever blocking or flooding: the file tools' one way in.

Only regular files are opened (a FIFO, a device or a socket would block a read or never
end), with O_NONBLOCK and O_NOFOLLOW so a file swapped in after the check cannot block
or lead elsewhere either. A file hard-linked from outside the workspace is refused. Files
up to `max_bytes` are read whole; larger ones are paged: `read_lines` streams up to the
asked line range and stops at `max_chars`, so a 300 MB file costs what is shown. These
functions block; the tools run them in a worker thread. Knows nothing about tools.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from iclaw.errors import ToolError
from iclaw.tools.workspace import Workspace

__all__ = ["read_text", "read_lines", "MAX_WHOLE_BYTES"]

MAX_WHOLE_BYTES = 8 * 2**20
_SNIFF = 8192  # bytes looked at to decide whether a file is binary
_LINE_CAP = 64 * 1024  # longest line kept when paging through a large file
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


def _open(ws: Workspace, path: Path) -> tuple[int, os.stat_result]:
    shown = ws.relative(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ToolError(f"no such file: {shown}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"{shown} is a directory; use list_dir")
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise ToolError(f"{shown} is {kind}; only regular files can be read")
    ws.check_not_linked_outside(path, st)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped between the check and the open
        os.close(fd)
        raise ToolError(f"{shown} changed while being opened; only regular files can be read")
    return fd, st


def _binary(ws: Workspace, path: Path, head: bytes, size: int) -> None:
    if b"\x00" in head[:_SNIFF]:
        raise ToolError(f"{ws.relative(path)} is a binary file ({size} bytes); it cannot be shown as text")


def read_text(ws: Workspace, path: Path, max_bytes: int = MAX_WHOLE_BYTES) -> str:
    """The whole text of a regular file of at most `max_bytes` (ToolError otherwise)."""
    fd, st = _open(ws, path)
    with os.fdopen(fd, "rb") as handle:
        if st.st_size > max_bytes:
            raise ToolError(
                f"{ws.relative(path)} has {st.st_size} bytes, more than the {max_bytes} this tool handles; "
                "read it in pieces with read_file start_line/end_line, or change it with run_shell"
            )
        data = handle.read(max_bytes + 1)
    _binary(ws, path, data, len(data))
    return data.decode("utf-8", "replace")


def read_lines(ws: Workspace, path: Path, start: int, end: int | None, max_chars: int, max_bytes: int = MAX_WHOLE_BYTES) -> str:
    """Lines `start`..`end` (1-based, inclusive) with a note on what was left out."""
    shown = ws.relative(path)
    fd, st = _open(ws, path)
    with os.fdopen(fd, "rb") as handle:
        if st.st_size <= max_bytes:
            data = handle.read(max_bytes + 1)
            _binary(ws, path, data, len(data))
            return _page(data.decode("utf-8", "replace").splitlines(keepends=True), shown, start, end, max_chars)
        _binary(ws, path, handle.read(_SNIFF), st.st_size)
        handle.seek(0)
        shown_lines: list[str] = []
        chars = number = 0
        while (raw := _next_line(handle)) is not None:
            number += 1
            if number < start:
                continue
            if (end is not None and number > end) or chars >= max_chars:
                break
            line = raw.decode("utf-8", "replace")
            shown_lines.append(line)
            chars += len(line)
    if not shown_lines:
        raise ToolError(f"{shown} has {number} lines; start_line {start} is past the end", "invalid_arguments")
    text = "".join(shown_lines)[:max_chars]
    return text + (
        f"\n[lines {start}-{start + len(shown_lines) - 1} of a {st.st_size}-byte file, too large to read whole; "
        "page on with start_line/end_line]"
    )


def _next_line(handle) -> bytes | None:
    """The next line, cut at `_LINE_CAP` bytes (the rest is skipped in pieces, never held whole)."""
    raw = handle.readline(_LINE_CAP)
    if not raw:
        return None
    piece = raw
    while not piece.endswith(b"\n") and len(piece) == _LINE_CAP:
        piece = handle.readline(_LINE_CAP)
    return raw


def _page(lines: list[str], shown: str, start: int, end: int | None, max_chars: int) -> str:
    stop = min(end or len(lines), len(lines))
    if start > max(len(lines), 1):
        raise ToolError(f"{shown} has {len(lines)} lines; start_line {start} is past the end", "invalid_arguments")
    text = "".join(lines[start - 1 : stop])
    notes = []
    if start > 1 or stop < len(lines):
        notes.append(f"lines {start}-{stop} of {len(lines)}")
    if len(text) > max_chars:
        text = text[:max_chars]
        notes.append(f"truncated to {max_chars} characters; read a smaller line range")
    return text + (f"\n[{'; '.join(notes)}]" if notes else "")
