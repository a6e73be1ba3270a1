"""The fresh directory one attempt runs in.

```
evals-<task>-XXXX/          sandbox root (a new temporary directory per task × epoch)
  workspace/                the agent's root: task files + setup output; hidden files at check time
  <planted decoys>          the outside area that `outside_untouched` fingerprints
```

Setup failures are `HarnessError`s: a task whose workspace cannot be built says nothing
about the agent. This module knows the task's workspace spec, not the agent or checks.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from evals.checks import WORKSPACE_DIR
from evals.errors import HarnessError
from evals.file_spec import place_files
from evals.shell import run_shell
from evals.task import Task

__all__ = ["Sandbox", "SETUP_TIMEOUT_S"]

SETUP_TIMEOUT_S = 120.0


class Sandbox:
    """A temporary sandbox root with the task's workspace inside; remove() deletes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workspace = root / WORKSPACE_DIR

    @classmethod
    async def create(cls, task: Task, env: dict[str, str], parent: Path | None = None) -> Sandbox:
        """Make the directories, place the task files and run the setup command."""
        root = Path(tempfile.mkdtemp(prefix=f"evals-{task.id}-", dir=parent)).resolve()
        box = cls(root)
        try:
            box.workspace.mkdir()
            place_files(task.workspace.files, box.workspace)
            if task.workspace.setup:
                code, output = await run_shell(task.workspace.setup, box.workspace, env, SETUP_TIMEOUT_S)
                if code != 0:
                    why = "timed out" if code is None else f"exit {code}"
                    raise HarnessError(f"setup of task {task.id!r} failed ({why}): {output.strip()[-300:]}")
        except OSError as exc:
            box.remove()
            raise HarnessError(f"cannot build the workspace of task {task.id!r}: {exc}") from exc
        except BaseException:
            box.remove()
            raise
        return box

    def reveal_hidden(self, task: Task) -> None:
        """Copy the hidden files in: only after the agent finished, right before the checks."""
        place_files(task.hidden, self.workspace)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
