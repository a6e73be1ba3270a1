"""`Workspace`: the one directory the agent may touch, and path resolution that stays inside it.

Every path a tool receives goes through `resolve`: relative paths are taken from the
workspace root, `~` is refused, and the result is the *real* path (symlinks followed) so
`..` components, absolute paths and symlinks that lead outside are all refused with a
`SandboxViolation`. Knows nothing about tools or permissions.

NOTE: the check and the later open are two steps; a process racing to swap a directory
for a symlink in between could win. Commands the agent runs cannot write outside the
workspace when Landlock is available (see `iclaw.tools.landlock`), which closes that gap
for the agent's own commands.
"""

from __future__ import annotations

import os
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
