"""`Scratch`: the one temporary folder an eval process keeps its sandboxes and tool temp dirs in.

```
<TMPDIR>/iclaw-eval-XXXX/     one per running `Runner.execute`
  .lock                       flock-ed for as long as the process lives
  evals-<task>-XXXX/          attempt sandboxes
  iclaw-tmp-XXXX/             the private TMPDIRs of the agents' commands
```

A process killed mid-run leaves its folder behind; the next `Scratch.create` (a resumed
run or a new one) removes every `iclaw-eval-*` folder whose lock is free, i.e. whose
owner is dead. Folders without the lock file, and folders of live runs, are never
touched, so a sweep cannot delete anything that is not a dead run's own scratch.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["Scratch", "sweep"]

_PREFIX = "iclaw-eval-"
_LOCK = ".lock"


class Scratch:
    def __init__(self, root: Path, lock_fd: int) -> None:
        self.root = root
        self._lock_fd = lock_fd

    @classmethod
    def create(cls, base: Path | None = None) -> Scratch:
        """Sweep dead runs' folders, then make and lock a new one under `base` (default TMPDIR)."""
        base = Path(base or tempfile.gettempdir())
        sweep(base)
        root = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base)).resolve()
        # The lock is taken before the file gets its name, so a sweep never sees it unlocked.
        fd, tmp = tempfile.mkstemp(dir=root)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(tmp, root / _LOCK)
        return cls(root, fd)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        os.close(self._lock_fd)


def sweep(base: Path) -> list[Path]:
    """Remove the scratch folders under `base` whose owning process is gone; the removed paths."""
    removed = []
    for folder in sorted(Path(base).glob(f"{_PREFIX}*")):
        lock = folder / _LOCK
        if folder.is_symlink() or not folder.is_dir() or lock.is_symlink() or not lock.is_file():
            continue
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live run owns it
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed
