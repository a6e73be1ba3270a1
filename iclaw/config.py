"""The user's endpoint config (`~/.config/iclaw/config.yaml`) and iclaw's directories.

```yaml
default: local                 # endpoint used when --endpoint is not given
profile: v2                    # agent profile used when --profile is not given
endpoints:
  local:  {base_url: http://127.0.0.1:8000/v1, model: smollm2-135m-instruct}
  openai: {base_url: https://api.openai.com/v1, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}
```
The key itself never sits in the file: `api_key_env` names the environment variable that
holds it, which iclaw takes out of its environment on first use (`iclaw.secrets`). `--base-url` / `--model` override the chosen endpoint. Directories:
`ICLAW_CONFIG_DIR` (default ~/.config/iclaw) and `ICLAW_HOME` (default
~/.local/share/iclaw, for sessions and history). Knows nothing about agent profiles'
contents or models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iclaw.errors import ProfileError
from iclaw.secrets import take_secret

__all__ = ["Endpoint", "UserConfig", "config_dir", "data_dir", "load_user_config", "resolve_endpoint", "format_validation_error"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
DEFAULT_MODEL = "default"


def config_dir() -> Path:
    return Path(os.environ.get("ICLAW_CONFIG_DIR") or Path.home() / ".config" / "iclaw")


def data_dir() -> Path:
    return Path(os.environ.get("ICLAW_HOME") or Path.home() / ".local" / "share" / "iclaw")


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    api_key_env: str | None = None
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)  # resends on connection errors, 429 and 5xx
    stream: bool = True
    temperature: float | None = None
    max_tokens: int | None = Field(1024, gt=0)  # per reply; null leaves it to the server

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = take_secret(self.api_key_env)
        if not key:
            raise ProfileError(f"the endpoint's api_key_env names ${self.api_key_env}, which is not set; export it")
        return key


class UserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: str | None = None
    profile: str | None = None
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    mcp_servers: dict[str, Any] = Field(default_factory=dict)  # checked per server by iclaw.mcp.config


def format_validation_error(source: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{source}: field {field}: {first['msg']}{more}"


def read_yaml(path: Path) -> dict:
    """A YAML mapping from `path`, or ProfileError naming the file (and line when YAML is broken)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ProfileError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_user_config(path: Path | None = None) -> UserConfig:
    path = path or config_dir() / "config.yaml"
    if not path.exists():
        return UserConfig()
    try:
        return UserConfig.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ProfileError(format_validation_error(str(path), exc)) from exc


def resolve_endpoint(
    config: UserConfig, name: str | None = None, base_url: str | None = None, model: str | None = None
) -> Endpoint:
    """The endpoint to use: named (or the config's default), then overridden by flags."""
    name = name or config.default
    if name is not None and name not in config.endpoints:
        known = ", ".join(config.endpoints) or "(none configured)"
        raise ProfileError(f"unknown endpoint {name!r} in {config_dir() / 'config.yaml'}; known: {known}")
    endpoint = config.endpoints[name] if name else Endpoint()
    updates = {k: v for k, v in (("base_url", base_url), ("model", model)) if v}
    return endpoint.model_copy(update=updates)
