"""`Workspace`: the one directory the agent may touch, and path resolution that stays inside it.

Every path a tool receives goes through `resolve`: relative paths are taken from the
workspace root, `~` is refused, and the result is the *real* path (symlinks followed) so
`..` components, absolute paths and symlinks that lead outside are all refused with a
`SandboxViolation`. `outside_links` finds files whose hard links reach outside the
workspace (a link planted from outside): file tools and commands refuse them.
Knows nothing about tools or permissions.

NOTE: the check and the later open are two steps; a process racing to swap a directory
for a symlink in between could win. Commands the agent runs cannot write outside the
workspace when Landlock is available (see `iclaw.tools.landlock`), which closes that gap
for the agent's own commands.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from iclaw.errors import IclawError, SandboxViolation

__all__ = ["Workspace"]


class Workspace:
    def __init__(self, root: str | os.PathLike) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise IclawError(f"workspace {str(root)!r} is not an existing directory; create it or pass --workspace DIR")
        self.root = Path(os.path.realpath(path))

    def resolve(self, path: str | os.PathLike) -> Path:
        """The real path of `path` inside the workspace, or `SandboxViolation`."""
        text = os.fspath(path)
        if not text or "\x00" in text:
            raise SandboxViolation(f"invalid path {text!r}; give a path relative to the workspace")
        if text.startswith("~"):
            raise SandboxViolation(f"path {text!r} points into a home directory; give a path relative to the workspace")
        candidate = Path(text) if os.path.isabs(text) else self.root / text
        real = Path(os.path.realpath(candidate))
        if not self.contains(real):
            raise SandboxViolation(
                f"path {text!r} resolves to {real}, outside the workspace {self.root}; use a path inside the workspace"
            )
        return real

    def contains(self, real_path: Path) -> bool:
        return real_path == self.root or real_path.is_relative_to(self.root)

    def relative(self, real_path: Path) -> str:
        """Display form of a resolved path: relative to the root ('.' for the root itself)."""
        return str(real_path.relative_to(self.root)) if real_path != self.root else "."

    def outside_links(self) -> list[Path]:
        """Regular files in the workspace that share their inode with a path outside it.

        A file with n hard links is linked outside when fewer than n of its links are found
        in the workspace; finding that takes one walk, paid only when some file has n > 1."""
        links: dict[tuple[int, int], list] = {}
        for dirpath, _, filenames in os.walk(self.root):
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if st.st_nlink > 1 and stat.S_ISREG(st.st_mode):
                    links.setdefault((st.st_dev, st.st_ino), [st.st_nlink]).append(Path(path))
        return [p for nlink, *paths in links.values() if len(paths) < nlink for p in paths]

    def check_not_linked_outside(self, real_path: Path, st: os.stat_result) -> None:
        """SandboxViolation when `real_path` (with stat `st`) is a hard link to a file outside."""
        if st.st_nlink > 1 and real_path in self.outside_links():
            raise SandboxViolation(
                f"{self.relative(real_path)} is a hard link to a file outside the workspace; it cannot be used"
            )
