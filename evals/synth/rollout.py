"""Roll an `Episode` out through the real agent: every observation comes from executing the tools.

The expert's plan is replayed by iclaw's `ScriptedModel` inside iclaw's own `Agent`, on a
registry built the way the eval harness builds a task's (built-ins, mock tools, faults).
So the system message is the one the agent sends on its first step for that profile (v2
pins the task into it), the tool schemas are `Agent.tool_schemas()`, and every tool
message is the failure policy's observation of a real result — retries, replan requests
and all. The rollout then checks that nothing unexpected happened (every planned step
was used, the run ended with the planned answer, no compaction rewrote the history, the
evidence showed up in some observation); if not, it raises `RolloutError`.

`replay` rebuilds a row's workspace from its `meta` and runs each recorded call again, so
a test can prove the observations were executed, not written.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from iclaw.agent import Agent, Limits
from iclaw.executor import ToolExecutor
from iclaw.failure import FailurePolicy
from iclaw.profile import AgentProfile
from iclaw.providers.scripted import ScriptedModel
from iclaw.providers.turn import ToolCall

from evals.errors import EvalError
from evals.synth.episode import Episode, Recipe, Style

__all__ = ["Conversation", "RolloutError", "rollout", "style_of", "replay", "stable"]

_DURATION = re.compile(r"\b\d+(?:\.\d+)?s\b")
_SNIPPET = re.compile(r"[^\s\"']*/iclaw-tmp-[^/\s]+/snippet_[^/\s]+\.py")  # run_python's temporary script, in tracebacks


class RolloutError(EvalError):
    """The expert's plan did not run as the family expected (a family bug, or a broken tool)."""


@dataclass
class Conversation:
    messages: list[dict]  # system, user, then the assistant / tool messages of the run
    tools: list[dict]  # the OpenAI `tools` list the agent sent
    turn_index: list[int]  # plan turn k -> index in `messages` of its first assistant message


def style_of(profile: AgentProfile) -> Style:
    return Style(
        one_call_per_turn=profile.loop.one_call_per_turn,
        policy=profile.failure.policy,
        max_retries=profile.failure.max_retries if profile.failure.policy else 0,
    )


def _steps(episode: Episode, style: Style) -> tuple[list[dict], list[int]]:
    """ScriptedModel steps for the plan (v1 splits independent calls), and plan turn -> step index."""
    steps: list[dict] = []
    first: list[int] = []
    counter = 0
    for turn in episode.turns:
        first.append(len(steps))
        if not turn.calls:
            steps.append({"answer": turn.content or ""})
            continue
        groups = [[c] for c in turn.calls] if style.one_call_per_turn else [turn.calls]
        for g, group in enumerate(groups):
            calls = []
            for call in group:
                counter += 1
                calls.append({"id": f"call_{counter}", "name": call.name, "arguments": call.arguments})
            step: dict[str, Any] = {"tool_calls": calls}
            if g == 0 and turn.content:
                step["content"] = turn.content
            steps.append(step)
    return steps, first


def _fast(profile: AgentProfile) -> AgentProfile:
    # The executor's retry backoff only costs wall time; no message depends on it.
    return profile.model_copy(update={"failure": profile.failure.model_copy(update={"retry_backoff_s": 0.0})})


async def rollout(episode: Episode, profile: AgentProfile, root: Path) -> Conversation:
    """Build the workspace in the (empty) directory `root` and run the expert through the agent."""
    style = style_of(profile)
    steps, first = _steps(episode, style)
    episode.recipe.build(root)
    registry = episode.recipe.registry(root, profile.permissions.sandbox())
    model = ScriptedModel(steps, name="synth-expert")
    agent = Agent(model, registry, _fast(profile), Limits(max_steps=len(steps) + 1, wall_time_s=300.0))
    result = await agent.run(episode.instruction)
    where = f"family {episode.family} ({profile.name})"
    if result.status != "submitted" or model.position != len(steps):
        raise RolloutError(f"{where}: the expert did not finish as planned: {result.status} {result.error}")
    system = model.requests[0][0]
    transcript = _named(result.messages)
    assistant_positions = [i for i, m in enumerate(transcript) if m["role"] == "assistant"]
    if len(model.requests) != len(assistant_positions):
        raise RolloutError(f"{where}: {len(model.requests)} requests for {len(assistant_positions)} replies")
    for request, pos in zip(model.requests, assistant_positions):
        if _unnamed(request[1:]) != _unnamed(transcript[:pos]):
            raise RolloutError(f"{where}: the prompt was rewritten (compaction); shorten the episode")
    observations = "\n".join(m["content"] for m in transcript if m["role"] == "tool")
    missing = [e for e in episode.evidence if e not in observations]
    if missing:
        raise RolloutError(f"{where}: evidence {missing!r} never showed up in a tool observation")
    messages = [system, *transcript]
    turn_index = [assistant_positions[s] + 1 for s in first]
    _unlearn(messages, turn_index, episode.mistakes)
    return Conversation(messages, agent.tool_schemas(), turn_index)


def _unlearn(messages: list[dict], turn_index: list[int], mistakes: list[int]) -> None:
    """Give the assistant messages of the plan's deliberate slips `weight: 0`.

    The slip stays in the conversation (the model must learn to read its error and fix it)
    but out of the SFT loss, so training never teaches the slip itself.
    """
    for k in mistakes:
        end = turn_index[k + 1] if k + 1 < len(turn_index) else len(messages)
        for m in messages[turn_index[k]:end]:
            if m["role"] == "assistant":
                m["weight"] = 0


def _named(messages: list[dict]) -> list[dict]:
    """Tool messages carry the tool's name too (the chat format allows it; renderers use it)."""
    names: dict[str, str] = {}
    out = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[call["id"]] = call["function"]["name"]
        if message["role"] == "tool":
            message = {**message, "name": names[message["tool_call_id"]]}
        out.append(message)
    return out


def _unnamed(messages: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if not (m["role"] == "tool" and k == "name")} for m in messages]


def stable(text: str) -> str:
    """An observation with run-to-run noise (durations such as pytest's 'in 0.03s', the temporary
    script of run_python named in a traceback) masked."""
    return _SNIPPET.sub("<snippet>", _DURATION.sub("<duration>", text))


async def _replay(row: dict, profile: AgentProfile, root: Path) -> list[str]:
    recipe = Recipe.from_meta(row["meta"]["workspace"])
    recipe.build(root)
    policy = FailurePolicy(profile.failure)
    executor = ToolExecutor(recipe.registry(root, profile.permissions.sandbox()), parallel=False,
                            max_retries=profile.failure.max_retries if policy.active else 0, retry_backoff_s=0.0)
    out: list[str] = []
    for message in row["messages"]:
        calls = [ToolCall.from_raw(c["id"], c["function"]["name"], c["function"]["arguments"])
                 for c in message.get("tool_calls") or []]
        out += [policy.observation(result) for result in await executor.run(calls)]
    return out


def replay(row: dict, profile: AgentProfile) -> list[str]:
    """The observations of every tool call in `row`, re-executed on a fresh copy of its workspace."""
    with tempfile.TemporaryDirectory(prefix="synth-replay-") as tmp:
        return anyio.run(_replay, row, profile, Path(tmp))
