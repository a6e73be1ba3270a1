"""`iclaw bench memory`: a 200-turn scripted session against a small token budget.

Each turn the user asks to check the next part of a service log; the (scripted) model
reads it with a `read_log` tool (about 300 tokens of log lines) and answers. Twenty
facts are planted along the way: ten stated by the user ("Remember: the access code for
vault 3 is VX-4821.") and ten buried in log output ("NOTE: rotation key for shard-5 =
RK-1234 (decided in review)"). Nothing in the script pins or repeats them.

Measured per profile: the largest prompt the model was actually sent (counted with the
memory's own counter over every request, tool schemas included) against the budget, and
how many planted values are still present, verbatim, in the prompt the model would see
next — i.e. what it could quote. The scripted model declines summary requests, so v2's
summaries here are the extractive fallback.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter

from iclaw.agent import Agent, Limits
from iclaw.profile import load_profile
from iclaw.prompts import SUMMARY_MARKER
from iclaw.providers.scripted import ScriptedModel
from iclaw.tokens import count_messages
from iclaw.tools.mock import MockToolSpec, add_mock_tools
from iclaw.tools.registry import ToolRegistry

__all__ = ["run_memory_bench", "build_session"]

_TURN = re.compile(r"^Turn (\d+):")


def build_session(turns: int = 200, facts: int = 20, seed: int = 0) -> tuple[list[str], dict[str, str], list[dict]]:
    """User messages, log parts (by part number) and the planted facts ({value, source, turn})."""
    rng = random.Random(seed)
    user_turns = set(range(10, turns + 1, max(1, turns // (facts // 2))))
    tool_turns = {t - 5 for t in user_turns if t - 5 >= 1}
    planted: list[dict] = []
    messages: list[str] = []
    logs: dict[str, str] = {}
    for turn in range(1, turns + 1):
        lines = [
            f"2024-05-{1 + turn % 28:02d} {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} "
            f"INFO worker-{rng.randrange(8)} processed batch {rng.randrange(10_000)} in {rng.randrange(5, 900)} ms"
            for _ in range(8)
        ]
        if turn in tool_turns:
            value = f"RK-{rng.randrange(1000, 10_000)}"
            lines.insert(rng.randrange(len(lines)), f"NOTE: rotation key for shard-{turn} = {value} (decided in review)")
            planted.append({"value": value, "source": "tool", "turn": turn})
        logs[str(turn)] = "\n".join(lines)
        text = f"Turn {turn}: check part {turn} of the service log and tell me if anything is unusual."
        if turn in user_turns:
            value = f"VX-{rng.randrange(1000, 10_000)}"
            text += f" Remember: the access code for vault {turn} is {value}."
            planted.append({"value": value, "source": "user", "turn": turn})
        messages.append(text)
    return messages, logs, planted


def _step(messages: list[dict], tools: list[dict]) -> dict:
    """Read the part named by the latest user turn, then answer."""
    if messages[-1].get("role") == "tool":
        return {"answer": "Checked: the batches look normal, nothing unusual."}
    part = next(
        (m.group(1) for msg in reversed(messages) if msg.get("role") == "user" and (m := _TURN.match(msg.get("content") or ""))),
        "1",
    )
    return {"tool_calls": [{"name": "read_log", "arguments": {"part": part}}]}


async def _run_profile(profile_name: str, budget: int, messages: list[str], logs: dict[str, str], planted: list[dict]) -> dict:
    registry = ToolRegistry()
    add_mock_tools(registry, [MockToolSpec(
        name="read_log",
        description="Read one part of the service log.",
        parameters={"type": "object", "properties": {"part": {"type": "string"}}, "required": ["part"]},
        responses=logs,
        default="no such part",
    )])
    model = ScriptedModel([_step] * (2 * len(messages) + 10), name="bench-memory")
    profile = load_profile(profile_name, [f"memory.budget_tokens={budget}"])
    stages: Counter = Counter()
    sources: Counter = Counter()

    def on_event(event: dict) -> None:
        if event["type"] == "compaction":
            stages[event["stage"]] += 1
            if event.get("source"):
                sources[event["source"]] += 1

    agent = Agent(model, registry, profile, Limits(max_steps=6), on_event=on_event)
    started = time.perf_counter()
    statuses: Counter = Counter()
    for text in messages:
        statuses[(await agent.turn(text)).status] += 1
    wall = time.perf_counter() - started
    tools = agent.tool_schemas()
    await agent.memory.fit(tools)  # the prompt the model would be sent next
    sent = [r for r in model.requests if not str(r[0].get("content") or "").startswith(SUMMARY_MARKER)]
    peak = max(count_messages(agent.counter, request, tools) for request in sent)
    final_prompt = "\n".join(m.get("content") or "" for m in agent.memory.messages())
    kept = [fact for fact in planted if fact["value"] in final_prompt]
    return {
        "turns": len(messages),
        "model_requests": len(sent),
        "budget": budget,
        "peak_prompt_tokens": peak,
        "within_budget": peak <= budget,
        "facts_retained": len(kept),
        "facts_total": len(planted),
        "retained_user_facts": sum(1 for f in kept if f["source"] == "user"),
        "retained_tool_facts": sum(1 for f in kept if f["source"] == "tool"),
        "final_prompt_tokens": agent.memory.count(tools),
        "compactions": dict(stages),
        "summaries_by": dict(sources),
        "statuses": dict(statuses),
        "wall_s": round(wall, 2),
    }


async def run_memory_bench(turns: int = 200, budget: int = 4096, profiles: tuple[str, ...] = ("v1", "v2"), seed: int = 0) -> dict:
    messages, logs, planted = build_session(turns, 20, seed)
    rows = {load_profile(name).name: await _run_profile(name, budget, messages, logs, planted) for name in profiles}
    return {"bench": "memory", "turns": turns, "budget": budget, "facts": len(planted), "profiles": rows}
