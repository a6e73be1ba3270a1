"""Test doubles for the eval-harness tests: tiny suites written to disk, function-built model versions."""

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iclaw.providers import ChatModel, ScriptedModel

from evals.task import Suite, Task, load_suite
from evals.versions import ModelVersion


def write_suite(root: Path, tasks: dict[str, str], fixtures: dict[str, str] | None = None) -> Suite:
    """Write `{id: yaml}` task files (and fixture files) under `root` and load them."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in (fixtures or {}).items():
        path = root / "fixtures" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for task_id, text in tasks.items():
        (root / f"{task_id}.yaml").write_text(textwrap.dedent(text))
    return load_suite(root)


@dataclass
class FuncModel(ModelVersion):
    """A model version whose chat model is built by a function of the task (test double)."""

    name: str = "func"
    spec: str = "func"
    make: Callable[[Task], ChatModel] = field(default=lambda task: ScriptedModel([{"answer": ""}]))
    calls: list[str] = field(default_factory=list)

    def chat_model(self, task: Task) -> ChatModel:
        self.calls.append(task.id)
        return self.make(task)
