"""`iclaw bench parallel`: one turn that needs 8 slow lookups, v1 against v2.

Eight calls of a mock `get_weather` tool, each taking `latency_s` (0.5 s), requested by
a deterministic model that asks for every city it has no answer for yet — all at once.
v2 runs them concurrently in one step; v1 executes one call per turn, so the same model
needs eight steps. Reported per profile: wall time, steps, tool calls and the largest
number of calls in flight at once (from the executor's start/end events).
"""

from __future__ import annotations

import json
import statistics

from iclaw.agent import Agent, Limits
from iclaw.profile import load_profile
from iclaw.providers.scripted import ScriptedModel
from iclaw.tools.mock import MockToolSpec, add_mock_tools
from iclaw.tools.registry import ToolRegistry

__all__ = ["run_parallel_bench", "CITIES"]

CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Perth", "Dakar"]


def _weather_spec(latency_s: float) -> MockToolSpec:
    return MockToolSpec(
        name="get_weather",
        description="Current weather for a city.",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        latency_s=latency_s,
        responses={city: f"{10 + i}C, clear" for i, city in enumerate(CITIES)},
        default="unknown city",
    )


def _lookup_step(messages: list[dict], tools: list[dict]) -> dict:
    """Ask for every city without a result yet; answer once all are known."""
    asked: dict[str, str] = {}
    answered: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            asked[call["id"]] = json.loads(call["function"]["arguments"])["city"]
        if message.get("role") == "tool" and message.get("tool_call_id") in asked:
            answered[asked[message["tool_call_id"]]] = message.get("content") or ""
    missing = [city for city in CITIES if city not in answered]
    if missing:
        return {"tool_calls": [{"name": "get_weather", "arguments": {"city": city}} for city in missing]}
    return {"answer": "; ".join(f"{city}: {answered[city]}" for city in CITIES)}


async def _run_once(profile_name: str, latency_s: float) -> dict:
    registry = ToolRegistry()
    add_mock_tools(registry, [_weather_spec(latency_s)])
    model = ScriptedModel([_lookup_step] * (len(CITIES) + 2), name="bench-lookup")
    in_flight, peak = 0, 0

    def on_event(event: dict) -> None:
        nonlocal in_flight, peak
        if event["type"] == "tool_start":
            in_flight += 1
            peak = max(peak, in_flight)
        elif event["type"] == "tool_end":
            in_flight -= 1

    agent = Agent(model, registry, load_profile(profile_name), Limits(max_steps=20, tool_timeout_s=30), on_event=on_event)
    result = await agent.run("What is the weather in " + ", ".join(CITIES) + "?")
    complete = result.status == "submitted" and all(city in (result.answer or "") for city in CITIES)
    return {"wall_s": result.wall_s, "steps": result.steps, "tool_calls": result.tool_calls,
            "max_in_flight": peak, "status": result.status, "complete": complete}


async def run_parallel_bench(latency_s: float = 0.5, repeats: int = 1, profiles: tuple[str, ...] = ("v1", "v2")) -> dict:
    """Median over `repeats` runs per profile, plus the speed-up of the last profile over the first."""
    rows = {}
    for name in profiles:
        runs = [await _run_once(name, latency_s) for _ in range(repeats)]
        rows[load_profile(name).name] = {**runs[-1], "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
                      "wall_s_runs": [round(r["wall_s"], 3) for r in runs]}
    first, last = list(rows.values())[0], list(rows.values())[-1]
    return {
        "bench": "parallel",
        "calls": len(CITIES),
        "latency_s": latency_s,
        "repeats": repeats,
        "profiles": rows,
        "speedup": round(first["wall_s"] / last["wall_s"], 2) if last["wall_s"] else None,
    }
