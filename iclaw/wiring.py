"""Build the concrete pieces the CLI needs: model, tools, agent. The only place that wires them.

The library parts (agent, memory, tools, providers) receive their collaborators; this
module reads the user's config and flags and constructs them: an `OpenAIChatModel` for
an endpoint (or a `ScriptedModel` from a `--script` file), the built-in tool registry
with the profile's permissions plus the tools of the declared MCP servers (one `McpHub`
per session), and the `Agent` with the workspace's AGENTS.md in its system prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from iclaw.agent import Agent, Limits
from iclaw.agents_md import load_instructions, with_instructions
from iclaw.config import Endpoint, load_user_config, resolve_endpoint
from iclaw.errors import ProfileError
from iclaw.mcp.hub import McpHub, open_hub
from iclaw.profile import AgentProfile, load_profile
from iclaw.prompts import DEFAULT_SYSTEM_PROMPT
from iclaw.providers.openai import OpenAIChatModel
from iclaw.providers.retry import RetryPolicy
from iclaw.providers.scripted import ScriptedModel
from iclaw.providers.turn import ChatModel
from iclaw.tokens import load_counter
from iclaw.tools.builtin import builtin_registry
from iclaw.tools.permissions import Approver, Permissions
from iclaw.tools.registry import ToolRegistry

__all__ = ["AgentSettings", "build_model", "build_registry", "build_agent", "load_script"]


class AgentSettings:
    """What the command line chose: endpoint, profile, workspace, permission mode, limits."""

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        profile: str | None = None,
        overrides: list[str] | None = None,
        workspace: Path = Path("."),
        mode: str | None = None,
        script: Path | None = None,
        limits: Limits | None = None,
        temperature: float | None = None,
        agents_md: bool = True,
    ) -> None:
        config = load_user_config()
        self.endpoint: Endpoint = resolve_endpoint(config, endpoint, base_url, model)
        if temperature is not None:
            self.endpoint = self.endpoint.model_copy(update={"temperature": temperature})
        self.profile_name = profile or config.profile or "v2"
        self.overrides = list(overrides or [])
        self.workspace = workspace
        self.mode = mode
        self.script = script
        self.limits = limits or Limits()
        self.agents_md = agents_md  # add the workspace's AGENTS.md to the system prompt
        self.mcp: McpHub | None = None  # started on first use, shared by every agent of the session

    def profile(self, name: str | None = None) -> AgentProfile:
        return load_profile(name or self.profile_name, self.overrides)


def load_script(path: Path) -> ScriptedModel:
    """A ScriptedModel from a YAML/JSON file: a list of steps, or a mapping with `oracle:` (a task file)."""
    try:
        text = Path(path).read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ProfileError(f"cannot read the script {path}: {exc}") from exc
    steps = data.get("oracle") if isinstance(data, dict) else data
    if not isinstance(steps, list):
        raise ProfileError(f"{path}: a script is a list of steps (or a task file with an oracle: list)")
    return ScriptedModel(steps, name=f"scripted:{Path(path).name}")


def build_model(settings: AgentSettings, profile: AgentProfile) -> ChatModel:
    if settings.script is not None:
        return load_script(settings.script)
    endpoint = settings.endpoint
    return OpenAIChatModel(
        endpoint.base_url,
        endpoint.model,
        api_key=endpoint.api_key(),
        timeout_s=endpoint.timeout_s,
        retry=RetryPolicy(max_retries=endpoint.max_retries),
        stream=endpoint.stream,
        temperature=endpoint.temperature if endpoint.temperature is not None else profile.sampling.temperature,
        max_tokens=endpoint.max_tokens,
        parallel_tool_calls=False if profile.loop.one_call_per_turn else None,
        counter=load_counter(profile.memory.tokenizer),
    )


def build_registry(settings: AgentSettings, profile: AgentProfile, approver: Approver | None = None) -> ToolRegistry:
    permissions = Permissions(
        mode=settings.mode or profile.permissions.mode,
        allow=profile.permissions.allow,
        deny=profile.permissions.deny,
        approver=approver,
    )
    registry = builtin_registry(
        settings.workspace,
        permissions,
        http_allow_hosts=profile.tools.http_allow_hosts,
        command_timeout_s=settings.limits.tool_timeout_s,
        policy=profile.permissions.sandbox(),
    )
    if settings.mcp is None:
        settings.mcp = open_hub(settings.workspace, runner=registry.runner).start()
    settings.mcp.attach(registry, permissions)
    registry.mcp = settings.mcp
    return registry


def build_agent(
    settings: AgentSettings,
    profile_name: str | None = None,
    approver: Approver | None = None,
    trajectory_path: Path | None = None,
) -> Agent:
    profile = settings.profile(profile_name)
    model = build_model(settings, profile)
    registry = build_registry(settings, profile, approver)
    counter = load_counter(profile.memory.tokenizer)
    instructions = None
    if settings.agents_md:
        instructions = load_instructions(settings.workspace, counter, profile.memory.instructions_tokens)
    system_prompt = with_instructions(profile.system_prompt or DEFAULT_SYSTEM_PROMPT, instructions)
    agent = Agent(model, registry, profile, settings.limits, trajectory_path=trajectory_path,
                  system_prompt=system_prompt, counter=counter)
    agent.project_instructions = instructions  # the banner says whether AGENTS.md was loaded
    return agent
