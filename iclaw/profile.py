"""Agent profiles: every behaviour of the agent as a switch, loaded from YAML.

`v1` (the baseline) and `v2` (failure policy, parallel calls, hierarchical memory) ship
in `iclaw/profiles/`; users add their own in `~/.config/iclaw/profiles/` or pass a path.
A profile may `extends: v2` and change a few fields, so an ablation is a small file, and
dotted overrides (`memory.budget_tokens=4096`) change single fields from the command
line. Errors name the file (or the override) and the field; an unknown key gets the
closest valid one ("did you mean") and the keys its section has. Knows nothing about
how the switches are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iclaw.config import config_dir, format_validation_error, read_yaml
from iclaw.errors import ProfileError
from iclaw.suggest import did_you_mean
from iclaw.tools.permissions import Mode
from iclaw.tools.policy import ResourceLimits, SandboxPolicy

__all__ = ["AgentProfile", "load_profile", "list_profiles", "apply_overrides"]

BUILTIN_DIR = Path(__file__).parent / "profiles"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoopConfig(_Section):
    native_tools: bool = True  # send tool schemas natively; false: describe them in the prompt as text
    text_fallback: bool = True  # parse <tool_call> blocks / Action: lines from content
    one_call_per_turn: bool = False  # execute only the first call of a turn (v1)
    max_format_errors: int = Field(3, ge=1)  # consecutive unparseable replies that end the run


class ToolsConfig(_Section):
    parallel: bool = True  # run the calls of one turn concurrently
    max_concurrency: int = Field(8, ge=1)
    http_allow_hosts: list[str] = Field(default_factory=list)


class FailureConfig(_Section):
    policy: bool = True  # false: errors go back verbatim, no retry / replan / give-up
    max_retries: int = Field(2, ge=0)  # retries of a transient failure, same call
    retry_backoff_s: float = Field(0.2, ge=0)
    replan: bool = True
    max_replans: int = Field(2, ge=0)
    give_up: bool = True
    max_failures: int = Field(8, ge=1)  # failed calls (after retries) before giving up


class MemoryConfig(_Section):
    strategy: Literal["hierarchical", "truncate"] = "hierarchical"
    budget_tokens: int = Field(6144, ge=256)  # the prompt (messages + tool schemas) never exceeds this
    tokenizer: str = "estimate"  # or a path to a tokenizer.json / .tiktoken file
    keep_recent: int = Field(6, ge=1)  # most recent exchanges always kept verbatim
    mask_tool_outputs: bool = True
    mask_min_tokens: int = Field(120, ge=0)  # tool outputs shorter than this are never masked
    summarize: bool = True
    summarizer: Literal["model", "extractive"] = "model"
    summary_tokens: int = Field(400, ge=50)  # size of one summary block
    memory_share: float = Field(0.3, gt=0, lt=1)  # budget share for summary blocks before re-summarising
    pin: bool = True  # keep the task, plan, constraints, key facts and file paths pinned
    compact_at: float = Field(0.9, gt=0, le=1)  # compact when the prompt passes this share of the budget
    compact_to: float = Field(0.6, gt=0, le=1)  # ... down to this share
    instructions_tokens: int = Field(1024, ge=0)  # cap on the AGENTS.md text in the system prompt (0: leave it out)


class PermissionsConfig(_Section):
    mode: Mode = "auto"
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    network: Literal["deny", "allow"] = "deny"  # may commands open TCP connections (and any socket)
    unsafe_shell: bool = False  # run commands unconfined where the kernel has no Landlock
    limits: ResourceLimits = Field(default_factory=ResourceLimits)  # setrlimit for every command

    def sandbox(self) -> SandboxPolicy:
        return SandboxPolicy(network=self.network, unsafe_shell=self.unsafe_shell, limits=self.limits)


class SamplingConfig(_Section):
    # What iclaw asks the server for unless --temperature or the endpoint's temperature says
    # otherwise. Low: at a server's default (often 1.0) a small model babbles. null: the server's.
    temperature: float | None = Field(0.2, ge=0)


class AgentProfile(_Section):
    name: str
    description: str = ""
    system_prompt: str | None = None
    loop: LoopConfig = Field(default_factory=LoopConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    failure: FailureConfig = Field(default_factory=FailureConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    permissions: PermissionsConfig = Field(default_factory=PermissionsConfig)


def list_profiles() -> list[str]:
    names = {p.stem for p in BUILTIN_DIR.glob("*.yaml")}
    names |= {p.stem for p in (config_dir() / "profiles").glob("*.yaml")}
    return sorted(names)


def _find(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        return path
    for directory in (config_dir() / "profiles", BUILTIN_DIR):
        candidate = directory / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    known = list_profiles()
    raise ProfileError(
        f"unknown profile {name_or_path!r}{did_you_mean(name_or_path, known)}; known: {', '.join(known)} (or pass a .yaml path)"
    )


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _raw(name_or_path: str, seen: tuple[Path, ...] = ()) -> tuple[dict, Path]:
    path = _find(name_or_path)
    if path.resolve() in seen:
        raise ProfileError(f"{path}: 'extends' forms a cycle ({' -> '.join(str(p) for p in seen)})")
    data = read_yaml(path)
    data.setdefault("name", path.stem)  # a child's name never comes from its parent
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise ProfileError(f"{path}: field extends: must be a profile name or path")
        base, _ = _raw(parent, (*seen, path.resolve()))
        data = _deep_merge(base, data)
    return data, path


def unknown_key(parts: list[str]) -> str | None:
    """Why the dotted key `parts` is not a profile field (with the closest one and its section's keys), or None."""
    model: type[BaseModel] = AgentProfile
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            full = ".".join(parts[: i + 1])
            where = ".".join(parts[:i])
            candidates = [f"{where}.{name}" if where else name for name in fields]
            keys = f"the keys of {where} are" if where else "the sections are"
            return f"unknown profile key {full}{did_you_mean(full, candidates)}; {keys}: {', '.join(fields)}"
        annotation = fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            if i < len(parts) - 1:
                return f"{'.'.join(parts[: i + 1])} is a setting, not a section; it has no key {parts[i + 1]!r}"
            return None
        model = annotation
    return None


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `section.field=value` overrides (values parsed as YAML) to a raw profile dict."""
    out = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ProfileError(f"override {item!r} must look like section.field=value (e.g. memory.budget_tokens=4096)")
        problem = unknown_key(key.strip().split("."))
        if problem:
            raise ProfileError(f"override {item}: {problem}")
        try:
            value: Any = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ProfileError(f"override {item!r}: the value is not valid YAML") from exc
        update: Any = value
        for part in reversed(key.strip().split(".")):
            update = {part: update}
        out = _deep_merge(out, update)
    return out


def load_profile(name_or_path: str, overrides: list[str] | None = None) -> AgentProfile:
    data, path = _raw(name_or_path)
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return AgentProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_explain(exc, path, overrides or [])) from exc


def _explain(exc: ValidationError, path: Path, overrides: list[str]) -> str:
    """One line: the override or the file at fault, the field, and what is wrong with it."""
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    dotted = ".".join(loc)
    for item in overrides:
        if item.partition("=")[0].strip() == dotted:  # the override's value is wrong: no file to name
            return f"override {item}: {first['msg']}"
    if first["type"] == "extra_forbidden":
        return f"{path}: {unknown_key(loc) or first['msg']}"
    return format_validation_error(str(path), exc)
