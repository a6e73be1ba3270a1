"""Where MCP servers are declared, and what a declaration may say.

Two places, the second winning on a shared name:

- `~/.config/iclaw/config.yaml`, key `mcp_servers:` (every workspace);
- `<workspace>/.iclaw/mcp.yaml`, key `servers:` (this project only).

```yaml
mcp_servers:
  notes:  {command: python, args: [notes_server.py], env: {NOTES_DIR: /srv/notes}}
  tracker: {transport: http, url: http://127.0.0.1:9000/mcp, headers: {X-Team: core}}
```
`transport` is `stdio` (the default when `command` is given) or `http` (streamable HTTP,
the default when `url` is given). A broken file or entry never stops a session: loading
returns the good servers plus one line per problem naming the file, the server and the
field. Knows nothing about connecting (see `iclaw.mcp.hub`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iclaw.config import config_dir, read_yaml
from iclaw.errors import IclawError, ProfileError

__all__ = [
    "McpServerSpec",
    "ServerEntry",
    "load_servers",
    "parse_servers",
    "user_config_path",
    "workspace_config_path",
    "save_server",
    "remove_server",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
TRANSPORTS = ("stdio", "http")


class McpServerSpec(BaseModel):
    """One server: how to start it (stdio) or reach it (http)."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["stdio", "http"] | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None  # default: the workspace
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    startup_timeout_s: float = Field(30.0, gt=0)
    sandbox: bool = False  # start the command through iclaw's sandbox launcher (always so in tasks)

    @field_validator("transport", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("streamable-http", "streamable_http", "https"):
            return "http"
        if isinstance(value, str) and value not in TRANSPORTS:
            raise ValueError(f"unknown transport {value!r}; use one of {', '.join(TRANSPORTS)}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> McpServerSpec:
        if self.transport is None:
            self.transport = "http" if self.url and not self.command else "stdio"
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio server needs `command` (and `args`), or set transport: http and `url`")
        if self.transport == "http" and not self.url:
            raise ValueError("an http server needs `url` (e.g. http://127.0.0.1:8000/mcp)")
        if self.transport == "http" and self.sandbox:
            raise ValueError("`sandbox` applies to stdio servers only")
        return self

    def target(self) -> str:
        """What `iclaw mcp list` shows: the command line or the URL."""
        return self.url or " ".join([self.command or "", *self.args])


@dataclass
class ServerEntry:
    name: str
    spec: McpServerSpec
    source: str  # the file (or task) that declared it


def user_config_path() -> Path:
    return config_dir() / "config.yaml"


def workspace_config_path(workspace: Path) -> Path:
    return Path(workspace) / ".iclaw" / "mcp.yaml"


def parse_servers(data: Any, source: str, reserved: tuple[str, ...] = ()) -> tuple[list[ServerEntry], list[str]]:
    """Validate a `name -> spec` mapping; (good entries, one line per bad one)."""
    if data is None:
        return [], []
    if not isinstance(data, dict):
        return [], [f"{source}: the MCP servers must be a mapping of name -> settings, got {type(data).__name__}"]
    entries, problems = [], []
    for name, raw in data.items():
        name = str(name)
        where = f"{source}: server {name!r}"
        if not NAME_PATTERN.match(name):
            problems.append(f"{where}: the name may use letters, digits, _ and - only (tools are named {name}.TOOL); rename it")
            continue
        if name in reserved:
            problems.append(f"{where}: the name clashes with the built-in tool {name}; rename the server")
            continue
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping (command/args or url), got {type(raw).__name__}")
            continue
        try:
            entries.append(ServerEntry(name, McpServerSpec.model_validate(raw), source))
        except ValidationError as exc:
            problems.append(f"{where}: {_first_problem(exc)}; fix it (iclaw goes on without this server)")
    return entries, problems


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"field {field}: {msg}" if field else msg


def _read(path: Path, key: str) -> tuple[Any, list[str]]:
    if not path.exists():
        return None, []
    try:
        return read_yaml(path).get(key), []
    except ProfileError as exc:
        return None, [f"{exc} (iclaw goes on without the MCP servers of this file)"]


def load_servers(workspace: Path | None, reserved: tuple[str, ...] = ()) -> tuple[list[ServerEntry], list[str]]:
    """The servers of the user config and of the workspace (the workspace wins a shared name)."""
    by_name: dict[str, ServerEntry] = {}
    problems: list[str] = []
    files = [(user_config_path(), "mcp_servers")]
    if workspace is not None:
        files.append((workspace_config_path(workspace), "servers"))
    for path, key in files:
        data, read_problems = _read(path, key)
        entries, entry_problems = parse_servers(data, str(path), reserved)
        problems += read_problems + entry_problems
        by_name.update({e.name: e for e in entries})
    return list(by_name.values()), problems


def save_server(path: Path, key: str, name: str, spec: McpServerSpec) -> None:
    """Add or replace one server in a config file (other keys are kept; comments are not)."""
    if not NAME_PATTERN.match(name):
        raise IclawError(f"server name {name!r}: use letters, digits, _ and - only")
    data = read_yaml(path) if path.exists() else {}
    servers = data.get(key) or {}
    if not isinstance(servers, dict):
        raise ProfileError(f"{path}: {key} must be a mapping of name -> settings; fix the file first")
    servers[name] = spec.model_dump(exclude_defaults=True, exclude_none=True)
    data[key] = servers
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def remove_server(path: Path, key: str, name: str) -> bool:
    """Remove one server; False when the file does not declare it."""
    if not path.exists():
        return False
    data = read_yaml(path)
    servers = data.get(key)
    if not isinstance(servers, dict) or name not in servers:
        return False
    del servers[name]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return True
