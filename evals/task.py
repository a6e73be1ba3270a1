"""The task schema (`tasks/*.yaml`) and the suite loader.

A task is validated with pydantic; a bad task raises `TaskError` naming the file and the
dotted field path (`tasks/x.yaml: checks.0.answer.regex: invalid regular expression ...`).
Fixture paths (`{from: ...}`) are resolved relative to the task file and must exist.

This module knows the YAML layout; it does not run anything (see `evals.attempt`).
"""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from iclaw.mcp.config import NAME_PATTERN, McpServerSpec
from iclaw.tools import BUILTIN_TOOLS, FaultSpec, MockToolSpec
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from evals.checks import Check
from evals.errors import TaskError
from evals.file_spec import FileContent, RelPath

__all__ = ["Task", "TaskLimits", "WorkspaceSpec", "OracleStep", "Suite", "load_task", "load_suite"]

Category = Literal["qa", "files", "edit", "code", "shell", "data", "recovery", "parallel", "long-context", "safety"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskLimits(_Strict):
    """Per-task agent limits; a run that hits one ends and is still scored."""

    max_steps: int = Field(default=20, ge=1)
    wall_time_s: float = Field(default=300.0, gt=0)
    tool_timeout_s: float = Field(default=30.0, gt=0)
    max_tokens: int | None = Field(default=None, ge=1)
    network: Literal["deny", "allow"] = "deny"  # may the agent's commands open connections (whatever the profile says)


class WorkspaceSpec(_Strict):
    files: dict[RelPath, FileContent] = Field(default_factory=dict)
    setup: str | None = None


class OracleCall(_Strict):
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class OracleStep(_Strict):
    """One scripted model turn: tool calls, or the final answer."""

    tool_calls: list[OracleCall] | None = None
    answer: str | None = None
    content: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> OracleStep:
        if (self.tool_calls is None) == (self.answer is None):
            raise ValueError("an oracle step has either tool_calls or answer (exactly one)")
        return self

    def to_script(self) -> dict[str, Any]:
        """The step in the shape iclaw's ScriptedModel replays."""
        return self.model_dump(exclude_none=True)


class Task(_Strict):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    category: Category
    difficulty: Literal["easy", "medium", "hard"]
    instruction: str = Field(min_length=1)
    workspace: WorkspaceSpec = Field(default_factory=WorkspaceSpec)
    hidden: dict[RelPath, FileContent] = Field(default_factory=dict)
    tools: list[str] | None = None
    mock_tools: list[MockToolSpec] = Field(default_factory=list)
    mcp_servers: dict[str, McpServerSpec] = Field(default_factory=dict)  # commands started in the task's sandbox
    faults: list[FaultSpec] = Field(default_factory=list)
    limits: TaskLimits = Field(default_factory=TaskLimits)
    checks: list[Check] = Field(min_length=1)
    oracle: list[OracleStep] | None = None

    _path: Path | None = PrivateAttr(default=None)
    _digest: str = PrivateAttr(default="")

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if name not in BUILTIN_TOOLS:
                raise ValueError(f"unknown built-in tool {name!r}; known: {', '.join(BUILTIN_TOOLS)}")
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _task_servers(cls, value: dict[str, McpServerSpec]) -> dict[str, McpServerSpec]:
        for name, spec in value.items():
            if not NAME_PATTERN.match(name) or name in BUILTIN_TOOLS:
                raise ValueError(f"server {name!r}: use letters, digits, _ and - and no built-in tool's name")
            if spec.transport != "stdio":
                raise ValueError(f"server {name!r}: a task's MCP server is a command (stdio) started in its sandbox")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Task:
        mock_names = [m.name for m in self.mock_tools]
        if len(set(mock_names)) != len(mock_names):
            raise ValueError("mock_tools: two mock tools share a name")
        if self.tools is not None:
            served = tuple(f"{name}." for name in self.mcp_servers)
            missing = [f.tool for f in self.faults if f.tool not in self.tools and f.tool not in mock_names
                       and not any(f.tool.startswith(prefix) for prefix in served)]
            if missing:
                raise ValueError(f"faults: tool {missing[0]!r} is not among this task's tools")
        overlap = set(self.hidden) & set(self.workspace.files)
        if overlap:
            raise ValueError(f"hidden: {sorted(overlap)[0]!r} is also a workspace file")
        return self

    @property
    def path(self) -> Path | None:
        """The task file this task was loaded from."""
        return self._path

    @property
    def digest(self) -> str:
        """SHA-256 over the task file and every fixture it references (identifies the version)."""
        return self._digest


class Suite(BaseModel):
    """Loaded tasks plus the files that failed to load (kept only with keep_going)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path
    tasks: list[Task]
    broken: list[TaskError] = Field(default_factory=list)


def load_task(path: Path) -> Task:
    """Load and validate one task file; raises TaskError naming the file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskError(f"{path}: cannot read task file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise TaskError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise TaskError(f"{path}: a task file must be a YAML mapping (id, instruction, checks, ...)")
    try:
        task = Task.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise TaskError(f"{path}: {_describe(exc)}") from exc
    if task.id != path.stem:
        raise TaskError(f"{path}: id: {task.id!r} must equal the file name {path.stem!r}")
    task._path = path.resolve()
    task._digest = _digest(text, task)
    return task


def load_suite(root: Path, keep_going: bool = False, only: list[str] | None = None) -> Suite:
    """Load every `*.yaml` task directly under `root` (or the single file `root`).

    `only` keeps tasks whose id matches one of the shell-style patterns. A broken task
    file raises TaskError unless `keep_going`, in which case it is listed in `broken`.
    """
    root = Path(root)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    else:
        raise TaskError(f"{root}: no such suite directory or task file")
    if not files:
        raise TaskError(f"{root}: no task files (*.yaml) found")
    tasks: list[Task] = []
    broken: list[TaskError] = []
    for file in files:
        if only and not any(fnmatch.fnmatchcase(file.stem, pat) for pat in only):
            continue
        try:
            tasks.append(load_task(file))
        except TaskError as exc:
            broken.append(exc)
    ids = [t.id for t in tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise TaskError(f"{root}: duplicate task id {dupes[0]!r}")
    if broken and not keep_going:
        more = f" (and {len(broken) - 1} more broken task files)" if len(broken) > 1 else ""
        raise TaskError(f"{broken[0]}{more}; fix it or pass --keep-going to run the others")
    if not tasks and not broken:
        raise TaskError(f"{root}: no task matches {', '.join(only or [])}")
    return Suite(root=root.resolve(), tasks=tasks, broken=broken)


def _describe(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        # Tagged-union tags ("<text>", "<from>") are implementation detail, not fields.
        loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p.startswith("<")))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc or '(top level)'}: {msg}")
    extra = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{extra} more)" if extra > 0 else "")


def _digest(text: str, task: Task) -> str:
    h = hashlib.sha256(text.encode())
    sources = [c for c in [*task.workspace.files.values(), *task.hidden.values()] if not isinstance(c, str)]
    for check in task.checks:
        sources += [c for c in check.fixture_files() if not isinstance(c, str)]
    for src in sorted({s.source for s in sources if s.source is not None}):
        for file in sorted(src.rglob("*")) if src.is_dir() else [src]:
            if file.is_file():
                h.update(file.relative_to(src.parent).as_posix().encode())
                h.update(file.read_bytes())
    return h.hexdigest()
