"""Content snapshots of files and directory trees, and the difference between two.

A snapshot maps each path (relative to its root) to a fingerprint: kind, size, mode,
mtime and SHA-256 of the content. Comparing two snapshots names every file that was
created, deleted or modified — the `unchanged` and `outside_untouched` checks are built
on it. The mtime is part of the fingerprint on purpose: rewriting a file with identical
bytes (`touch`, a no-op `sed -i`) is still a write.

This module knows nothing about tasks or agents; it only reads the filesystem.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Fingerprint", "Snapshot", "snapshot", "diff"]


@dataclass(frozen=True)
class Fingerprint:
    kind: str  # "file" | "dir" | "link" | "special" (FIFO, socket, device) | "missing"
    size: int = 0
    mode: int = 0
    mtime_ns: int = 0
    sha256: str = ""


Snapshot = dict[str, Fingerprint]


def snapshot(root: Path, exclude: set[Path] | None = None) -> Snapshot:
    """Fingerprint `root` (a file or a directory tree) without following symlinks.

    Keys are POSIX paths relative to `root` ("." for the root itself). Paths in
    `exclude` (absolute) are skipped together with everything below them.
    """
    excluded = {p.resolve() for p in exclude or set()}
    result: Snapshot = {}
    _walk(root, root, excluded, result)
    return result


def diff(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable changes from `before` to `after`, sorted by path."""
    changes = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if old is None:
            changes.append(f"created {path}")
        elif new is None:
            changes.append(f"deleted {path}")
        elif old.kind != new.kind:
            changes.append(f"replaced {path} ({old.kind} -> {new.kind})")
        elif old.sha256 != new.sha256 or old.size != new.size:
            changes.append(f"modified {path}")
        elif old.mode != new.mode:
            changes.append(f"chmod {path}")
        else:
            changes.append(f"rewritten {path} (same content, new mtime)")
    return changes


def _walk(root: Path, path: Path, excluded: set[Path], out: Snapshot) -> None:
    if path.resolve() in excluded and path != root:
        return
    key = path.relative_to(root).as_posix()
    try:
        st = path.lstat()
    except FileNotFoundError:
        out[key] = Fingerprint("missing")
        return
    if stat.S_ISLNK(st.st_mode):
        out[key] = Fingerprint("link", mode=st.st_mode, sha256=os.readlink(path))
    elif stat.S_ISDIR(st.st_mode):
        # A directory's own mtime changes whenever an entry is added or removed; the
        # entries themselves report that more precisely, so only the mode is kept.
        out[key] = Fingerprint("dir", mode=st.st_mode)
        for child in sorted(path.iterdir()):
            _walk(root, child, excluded, out)
    elif stat.S_ISREG(st.st_mode):
        out[key] = Fingerprint(
            "file", size=st.st_size, mode=st.st_mode, mtime_ns=st.st_mtime_ns, sha256=_sha256(path)
        )
    else:
        # NOTE: never open a FIFO: the read would block until some writer appears, and an
        # agent could use that to hang the check.
        out[key] = Fingerprint("special", mode=st.st_mode, mtime_ns=st.st_mtime_ns)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        # O_NONBLOCK | O_NOFOLLOW: should the path have become a FIFO or a link since it
        # was stat'ed, opening it neither blocks nor leaves the tree.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                digest.update(block)
    except OSError as exc:
        # An unreadable file (permissions) is still fingerprinted by its metadata; the
        # reason keeps two different failures apart.
        return f"unreadable: {exc.strerror}"
    return digest.hexdigest()
