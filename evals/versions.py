"""Model and agent versions: the two axes of the eval matrix.

Model specs (`--model`, repeatable or comma-separated):

- `oracle` — replays each task's `oracle:` steps (iclaw's ScriptedModel); calls of a step
  that the agent profile did not run (v1 runs one call per turn) are sent again on the
  next turns, so the whole reference solution runs under every profile;
- `null` — answers "I don't know." at once, without tools (nothing should pass);
- `NAME=URL` — any OpenAI-compatible endpoint; NAME is also the model name sent to it
  (the API key, if any, comes from $OPENAI_API_KEY); before the first attempt the
  endpoint is probed: it must answer, accept the credentials (no 401/403 on `/models`
  or on a one-token chat completion) and, when it lists its models, serve NAME;
- `NAME=ckpt:PATH` — a checkpoint: the harness starts `llm serve` for it on a free port,
  waits for `/health`, asks `/v1/models` for the served name, and stops the server when
  the model's runs are done.

Agent specs (`--agent v1,v2` or profile paths) are iclaw profiles.

A `ModelVersion` makes one fresh `ChatModel` per attempt (`chat_model(task)`) and may own
a process between `start()` and `stop()`. Tests subclass it to build crashing or hanging
models; only the CLI turns spec strings into versions.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from iclaw.errors import ProfileError
from iclaw.providers import ChatModel, OpenAIChatModel, ScriptedModel
from iclaw.profile import AgentProfile, load_profile
from iclaw.suggest import did_you_mean

from evals.errors import HarnessError, SpecError
from evals.server import LlmServer
from evals.task import OracleStep, Task

__all__ = [
    "ModelVersion",
    "OracleModel",
    "NullModel",
    "EndpointModel",
    "CheckpointModel",
    "AgentVersion",
    "CREDENTIAL_STATUSES",
    "OracleReplay",
    "probe_credentials",
    "parse_model_specs",
    "parse_agent_specs",
    "split_specs",
]

NULL_ANSWER = "I don't know."
CREDENTIAL_STATUSES = (401, 403)
"""HTTP statuses of an endpoint that refuses the credentials: a harness error, never the agent's."""
PROBE_TIMEOUT_S = 10.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")


@dataclass
class ModelVersion:
    """One model axis value; subclasses decide how to talk to it."""

    name: str
    spec: str
    temperature: float | None = field(default=None, kw_only=True)  # None: the endpoint's default

    @property
    def endpoint(self) -> str | None:
        """The URL requests go to, if any (named in harness errors)."""
        return None

    async def start(self, log_dir: Path) -> None:
        """Bring the model up (e.g. start a server); called once before its runs."""

    async def stop(self) -> None:
        """Release what start() acquired; must be safe to call after a failed start."""

    def chat_model(self, task: Task) -> ChatModel:
        raise NotImplementedError


@dataclass
class OracleModel(ModelVersion):
    name: str = "oracle"
    spec: str = "oracle"

    def chat_model(self, task: Task) -> ChatModel:
        if not task.oracle:
            raise HarnessError(f"task {task.id!r} has no oracle: steps to replay", retryable=False)
        replay = OracleReplay(task.oracle)
        return ScriptedModel([replay] * replay.max_turns, name="oracle")


class OracleReplay:
    """A task's oracle as one reactive ScriptedModel step: every call runs under every profile.

    The agent records the calls it ran in its assistant message; a profile that runs one
    call per turn (v1) drops the others, so they are sent again, one turn later, before
    the oracle's next step. Under a profile that runs every call this is plain replay.
    """

    def __init__(self, steps: list[OracleStep]) -> None:
        self.steps = deque(step.to_script() for step in steps)
        self.unsent: list[dict] = []
        # Enough turns for one call per turn; ScriptedModel repeats the answer after that.
        self.max_turns = sum(max(1, len(step.tool_calls or [])) for step in steps)

    def __call__(self, messages: list[dict], tools: list[dict]) -> dict:
        if self.unsent:
            self.unsent = self.unsent[_calls_ran(messages):]
            if self.unsent:
                return {"tool_calls": self.unsent}
        step = self.steps.popleft() if self.steps else {"answer": ""}
        self.unsent = list(step.get("tool_calls") or [])
        return step


def _calls_ran(messages: list[dict]) -> int:
    """How many tool calls the agent ran for its last assistant turn (as it recorded it)."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            return len(message.get("tool_calls") or []) or str(message.get("content") or "").count("<tool_call>")
    return 0


@dataclass
class NullModel(ModelVersion):
    name: str = "null"
    spec: str = "null"

    def chat_model(self, task: Task) -> ChatModel:
        return ScriptedModel([{"answer": NULL_ANSWER}], name="null")


@dataclass
class EndpointModel(ModelVersion):
    url: str = ""

    @property
    def endpoint(self) -> str | None:
        return self.url

    async def start(self, log_dir: Path) -> None:
        """Fail fast when nothing answers at the URL, it refuses the credentials, or does not serve NAME."""
        key = os.environ.get("OPENAI_API_KEY")
        served = await served_models(self.url, key)
        if served and self.name not in served:
            raise HarnessError(
                f"{self.url} does not serve a model named {self.name!r} (it serves: {', '.join(served)}); "
                "use that name before '='", retryable=False, model_down=True,
            )
        await probe_credentials(self.url, self.name, key)

    def chat_model(self, task: Task) -> ChatModel:
        return OpenAIChatModel(self.url, self.name, api_key=os.environ.get("OPENAI_API_KEY"), temperature=self.temperature)


@dataclass
class CheckpointModel(ModelVersion):
    path: Path = field(default_factory=Path)
    command: list[str] | None = None  # None: the real `llm serve`
    startup_timeout_s: float = 300.0
    server: LlmServer | None = field(default=None, init=False)
    served_name: str | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str | None:
        return self.server.base_url if self.server and self.server.port else None

    async def start(self, log_dir: Path) -> None:
        self.server = LlmServer(
            self.path,
            log_dir / f"server-{_slug(self.name)}.log",
            command=self.command,
            startup_timeout_s=self.startup_timeout_s,
        )
        await self.server.start()
        # Requests must name the model the way the server lists it (NAME only labels results).
        served = await served_models(self.server.base_url)
        self.served_name = served[0] if served else None

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def chat_model(self, task: Task) -> ChatModel:
        if self.server is None or self.server.port is None:
            raise HarnessError(f"model {self.name!r}: the server for {self.path} is not running")
        return OpenAIChatModel(self.server.base_url, self.served_name or str(self.path), temperature=self.temperature)


@dataclass
class AgentVersion:
    name: str
    spec: str
    profile: AgentProfile


async def served_models(base_url: str, api_key: str | None = None) -> list[str] | None:
    """Model ids listed at `base_url/models`; None when the endpoint does not list them.

    Raises HarnessError (model down) when nothing answers at all.
    """
    probe = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.get(probe, headers=headers)
    except httpx.TransportError as exc:
        raise HarnessError(f"cannot reach {base_url} ({type(exc).__name__}: {exc})", model_down=True) from exc
    _refuse_credentials(base_url, response)
    if response.status_code != 200:
        return None
    try:
        data = response.json().get("data")
        return [str(m["id"]) for m in data] or None
    except (ValueError, AttributeError, KeyError, TypeError):
        return None  # not an OpenAI model list: nothing to check against


async def probe_credentials(base_url: str, model: str, api_key: str | None = None) -> None:
    """Ask for a one-token chat completion; HarnessError (model down) on no answer or 401/403.

    Some servers list their models to anyone and check the key only on completions, so
    the `/models` probe alone cannot tell. Other statuses are left to the attempts.
    """
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.post(url, json=body, headers=headers)
    except httpx.TimeoutException:
        return  # it answers, only slowly (a first request may load the model): the attempts will tell
    except httpx.TransportError as exc:
        raise HarnessError(f"cannot reach {base_url} ({type(exc).__name__}: {exc})", model_down=True) from exc
    _refuse_credentials(base_url, response)


def _refuse_credentials(base_url: str, response: httpx.Response) -> None:
    if response.status_code in CREDENTIAL_STATUSES:
        key = "$OPENAI_API_KEY is not set" if "authorization" not in response.request.headers else "check $OPENAI_API_KEY"
        raise HarnessError(
            f"{base_url} refused the credentials (HTTP {response.status_code} from {response.request.url.path}); {key}",
            retryable=False, model_down=True,
        )


def split_specs(values: list[str]) -> list[str]:
    """Repeatable options that also take comma-separated lists."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_model_specs(values: list[str], temperature: float | None = None) -> list[ModelVersion]:
    """Model versions from --model values; `temperature` goes to every served model (None: its default)."""
    versions: list[ModelVersion] = []
    for spec in split_specs(values):
        if spec == "oracle":
            versions.append(OracleModel())
        elif spec == "null":
            versions.append(NullModel())
        elif "=" in spec:
            name, _, target = spec.partition("=")
            if not _NAME.match(name):
                raise SpecError(f"--model {spec!r}: the name {name!r} must be letters, digits and -_.:/@+")
            if target.startswith("ckpt:"):
                path = Path(target[5:]).expanduser()
                if not path.exists():
                    raise SpecError(f"--model {spec!r}: checkpoint {path} does not exist")
                versions.append(CheckpointModel(name=name, spec=spec, path=path.resolve()))
            elif re.match(r"^https?://[^/\s]+", target):
                versions.append(EndpointModel(name=name, spec=spec, url=target))
            else:
                raise SpecError(f"--model {spec!r}: after '=' give an http(s):// URL or ckpt:PATH")
        else:
            hint = did_you_mean(spec, ("oracle", "null"))
            raise SpecError(f"--model {spec!r}{hint}: use oracle, null, NAME=URL or NAME=ckpt:PATH")
    for version in versions:
        version.temperature = temperature
    return _checked(versions, "--model", "oracle, null, NAME=URL or NAME=ckpt:PATH")


def parse_agent_specs(values: list[str]) -> list[AgentVersion]:
    """Profiles by name (v1, v2, ...) or path; errors come from iclaw with the file named."""
    versions = []
    for spec in split_specs(values):
        try:
            profile = load_profile(spec)
        except ProfileError as exc:
            raise SpecError(f"--agent {spec!r}: {exc}") from exc
        name = profile.name if not spec.endswith((".yaml", ".yml")) else Path(spec).stem
        versions.append(AgentVersion(name=name, spec=spec, profile=profile))
    return _checked(versions, "--agent", "v1, v2 or a profile .yaml path")


def _checked(versions: list, option: str, choices: str) -> list:
    """At least one version, and no two with the same name (names label the results)."""
    names = [v.name for v in versions]
    if len(set(names)) != len(names):
        raise SpecError(f"{option}: two versions share a name ({', '.join(names)}); names label the results")
    if not versions:
        raise SpecError(f"{option}: give at least one ({choices})")
    return versions


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
