"""Atomic writes: a file or a whole directory is there complete, or not at all.

- `atomic_write_text(path, text)`: the text goes to a temp file beside `path`, is fsynced,
  then `os.replace`d over it, so `path` holds the old text or the new, never half.
- `atomic_directory(path)`: a context manager that yields a hidden temp directory beside
  `path` to fill; on a clean exit every file in it is fsynced and the directory is renamed
  into place, on an exception it is removed. An existing `path` is moved aside
  (`.NAME.old`) for the instant between two renames; if a process dies right there,
  `recover(path)` puts the old directory back.

Used by checkpoints, training run directories, data shards and exports. Knows files, not
what is in them (the one in `iclaw` is its own: `llm` and `iclaw` share no code).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_directory", "recover"]


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's entries to disk (a rename is durable once its directory is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` via a temp file, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer (threads too); `open` rather than mkstemp keeps the umask's mode, not 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def recover(path: str | os.PathLike) -> None:
    """Finish an interrupted replace: if only the moved-aside old directory exists, restore it."""
    path = Path(path)
    old = _old(path)
    if not path.exists() and old.exists():
        os.rename(old, path)


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp directory to fill; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        for f in sorted(tmp.rglob("*"), reverse=True):  # files before the directories that hold them
            _fsync(f)
        _fsync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = _old(path)
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        os.rename(path, old)
    try:
        os.rename(tmp, path)
    except OSError:
        recover(path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(path.parent)
    shutil.rmtree(old, ignore_errors=True)
