"""The ReAct loop with the scripted model: failure policy, formats, limits, overflow, trajectory."""

from __future__ import annotations

import json

import pytest

from iclaw.agent import Agent, Limits
from iclaw.errors import ContextOverflow, ModelUnreachable
from iclaw.providers import AssistantTurn, ScriptedModel, ToolCall
from iclaw.profile import load_profile
from iclaw.prompts import SUMMARY_MARKER
from iclaw.tools import ToolRegistry, add_mock_tools, inject_faults
from iclaw.trajectory import read_trajectory

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "responses": {"Paris": "18C, sunny", "Oslo": "2C, snow"},
    "default": "unknown city",
}


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def weather_registry(faults=()):
    registry = ToolRegistry()
    add_mock_tools(registry, [WEATHER])
    if faults:
        inject_faults(registry, list(faults))
    return registry


def profile(name="v2", *overrides):
    return load_profile(name, ["failure.retry_backoff_s=0.001", *overrides])


def tool_messages(result):
    return [m["content"] for m in result.messages if m["role"] == "tool"]


@pytest.mark.anyio
async def test_transient_failure_is_retried_then_succeeds():
    model = ScriptedModel([{"tool_calls": [call("get_weather", city="Paris")]}, {"answer": "18C"}])
    events = []
    agent = Agent(model, weather_registry([{"tool": "get_weather", "calls": [1], "error": "ETIMEDOUT: upstream timed out"}]),
                  profile(), on_event=events.append)
    result = await agent.run("Weather in Paris?")
    assert result.status == "submitted" and result.answer == "18C"
    assert tool_messages(result) == ["18C, sunny"]  # the model only saw the success
    assert [e["attempt"] for e in events if e["type"] == "tool_retry"] == [1]
    assert [e["attempts"] for e in events if e["type"] == "tool_end"] == [2]


@pytest.mark.anyio
async def test_v1_passes_the_error_back_verbatim_without_retry():
    model = ScriptedModel([{"tool_calls": [call("get_weather", city="Paris")]}, {"answer": "?"}])
    agent = Agent(model, weather_registry([{"tool": "get_weather", "calls": [1], "error": "EIO: temporary read error"}]), profile("v1"))
    result = await agent.run("Weather in Paris?")
    assert tool_messages(result) == ["error: EIO: temporary read error"]
    assert result.status == "submitted"


@pytest.mark.anyio
async def test_invalid_arguments_come_back_with_the_schema_and_the_model_fixes_the_call():
    model = ScriptedModel([
        {"tool_calls": [call("get_weather", town="Paris")]},
        {"tool_calls": [call("get_weather", city="Paris")]},
        {"answer": "18C"},
    ])
    result = await Agent(model, weather_registry(), profile()).run("Weather in Paris?")
    first, second = tool_messages(result)
    assert "invalid arguments" in first and '"required": ["city"]' in first
    assert second == "18C, sunny"
    assert result.status == "submitted"
    assert not any("new plan" in (m.get("content") or "") for m in result.messages)  # no replan for a fixable call


@pytest.mark.anyio
async def test_permanent_failure_triggers_a_replan_and_the_plan_stays_pinned():
    plan = "1. Use Oslo as the reference city instead.\n2. Report its weather."
    model = ScriptedModel([
        {"tool_calls": [call("get_weather", city="Paris")]},
        {"content": plan},
        {"tool_calls": [call("get_weather", city="Oslo")]},
        {"answer": "2C in Oslo"},
    ])
    agent = Agent(model, weather_registry([{"tool": "get_weather", "calls": [1], "error": "403 forbidden: no access to Paris"}]), profile())
    result = await agent.run("Weather?")
    assert result.status == "submitted"
    replan = [m["content"] for m in result.messages if m["role"] == "user" and "new plan" in m["content"]]
    assert len(replan) == 1 and "get_weather(city=\"Paris\")" in replan[0] and "403 forbidden" in replan[0]
    assert agent.memory.pins.plan == plan
    # Every later prompt carries the plan in its pinned section.
    assert all(plan in request[0]["content"] for request in model.requests[2:])


@pytest.mark.anyio
async def test_gives_up_honestly_when_replans_are_exhausted():
    model = ScriptedModel([{"tool_calls": [call("get_weather", city=c)]} for c in ("Paris", "Oslo", "Lima", "Rome")] * 3)
    faults = [{"tool": "get_weather", "calls": list(range(1, 20)), "error": "service retired: 410 gone"}]
    agent = Agent(model, weather_registry(faults), profile("v2", "failure.max_replans=1"))
    result = await agent.run("Weather?")
    assert result.status == "gave_up" and result.answer is None
    assert "could not complete the task" in result.error and "What I tried" in result.error
    assert 'get_weather(city="Paris") -> failed (permanent): service retired: 410 gone' in result.error
    assert 'get_weather(city="Oslo")' in result.error


@pytest.mark.anyio
async def test_the_model_may_choose_to_give_up():
    model = ScriptedModel([{"answer": "GIVE UP: the data is not in the workspace"}])
    result = await Agent(model, weather_registry(), profile()).run("Find the secret")
    assert result.status == "gave_up" and "the data is not in the workspace" in result.error


@pytest.mark.anyio
async def test_unparseable_replies_are_corrected_then_counted():
    bad = {"content": '<tool_call>{"name": "get_weather", "arguments": {broken</tool_call>'}
    recovered = ScriptedModel([bad, {"tool_calls": [call("get_weather", city="Oslo")]}, {"answer": "2C"}])
    result = await Agent(recovered, weather_registry(), profile()).run("Weather?")
    assert result.status == "submitted"
    assert any("could not be parsed" in (m.get("content") or "") for m in result.messages if m["role"] == "user")
    stuck = ScriptedModel([bad] * 5)
    result = await Agent(stuck, weather_registry(), profile("v2", "loop.max_format_errors=3")).run("Weather?")
    assert result.status == "format_error" and result.steps == 3


@pytest.mark.anyio
async def test_text_protocol_for_models_without_native_tools():
    model = ScriptedModel([
        {"content": 'Checking.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'},
        {"content": "Action: get_weather\nAction Input: Paris"},
        {"answer": "done"},
    ])
    agent = Agent(model, weather_registry(), profile("v2", "loop.native_tools=false"))
    result = await agent.run("Weather?")
    assert result.status == "submitted" and tool_messages(result) == ["2C, snow", "18C, sunny"]
    last_prompt = model.requests[-1]
    assert "# Tools" in last_prompt[0]["content"] and "get_weather" in last_prompt[0]["content"]
    assert all(m["role"] != "tool" for m in last_prompt)  # tool results travel as text
    assert any("<tool_response>" in (m["content"] or "") for m in last_prompt if m["role"] == "user")


@pytest.mark.anyio
async def test_v1_runs_only_the_first_call_of_a_turn():
    model = ScriptedModel([{"tool_calls": [call("get_weather", city="Paris"), call("get_weather", city="Oslo")]}, {"answer": "x"}])
    result = await Agent(model, weather_registry(), profile("v1")).run("Weather?")
    assert result.tool_calls == 1 and tool_messages(result) == ["18C, sunny"]
    assert len(result.messages[1]["tool_calls"]) == 1  # the recorded turn matches what ran


@pytest.mark.anyio
async def test_step_and_wall_time_limits_end_the_run_with_a_status():
    loop = ScriptedModel([{"tool_calls": [call("get_weather", city="Paris")]}] * 10)
    result = await Agent(loop, weather_registry(), profile(), Limits(max_steps=3)).run("x")
    assert result.status == "limits_exceeded" and result.steps == 3 and "step limit" in result.error
    registry = ToolRegistry()
    add_mock_tools(registry, [{"name": "hang", "latency_s": 60}])
    stuck = ScriptedModel([{"tool_calls": [call("hang")]}])
    agent = Agent(stuck, registry, profile(), Limits(wall_time_s=0.2))
    result = await agent.run("x")
    assert result.status == "limits_exceeded" and "wall-time" in result.error
    assert agent.memory.messages()[-1]["role"] == "tool"  # the dangling call was answered


@pytest.mark.anyio
async def test_context_overflow_triggers_compaction_not_a_resend():
    class Overflowing:
        """Calls a tool, then rejects the next prompt as too long once, then answers."""

        name = "overflowing"

        def __init__(self):
            self.prompts = []

        async def complete(self, messages, tools):
            if messages[0]["content"].startswith(SUMMARY_MARKER):
                return AssistantTurn(content="")  # decline: the memory summarises extractively
            self.prompts.append(messages)
            if len(self.prompts) == 1:
                return AssistantTurn(tool_calls=[ToolCall("c1", "get_weather", {"city": "Paris"})])
            if len(self.prompts) == 2:
                raise ContextOverflow("maximum context length exceeded")
            return AssistantTurn(content="18C")

    model = Overflowing()
    events = []
    agent = Agent(model, weather_registry(), profile("v2", "memory.keep_recent=1"), on_event=events.append)
    result = await agent.run("Weather? " + "context " * 50)
    assert result.status == "submitted"
    assert len(model.prompts) == 3
    assert any(e["type"] == "compaction" for e in events)
    assert model.prompts[2] != model.prompts[1]  # compacted, not the same prompt again


@pytest.mark.anyio
async def test_model_unreachable_propagates_and_the_trajectory_is_saved(tmp_path):
    class Down:
        async def complete(self, messages, tools):
            raise ModelUnreachable("http://x.test/v1/chat/completions", "connection refused")

    path = tmp_path / "traj.jsonl"
    with pytest.raises(ModelUnreachable):
        await Agent(Down(), weather_registry(), profile(), trajectory_path=path).run("x")
    types = [e["type"] for e in read_trajectory(path)]
    assert types[0] == "meta" and "end" in types


@pytest.mark.anyio
async def test_trajectory_is_written_after_every_step(tmp_path):
    path = tmp_path / "traj.jsonl"
    seen_on_disk = []

    def second_step(messages, tools):
        seen_on_disk.append([e["type"] for e in read_trajectory(path)])
        return {"answer": "ok"}

    model = ScriptedModel([{"tool_calls": [call("get_weather", city="Oslo")]}, second_step])
    result = await Agent(model, weather_registry(), profile(), trajectory_path=path).run("x")
    assert result.status == "submitted"
    # While step 2 was being decided, step 1's call and result were already on disk.
    assert "tool_end" in seen_on_disk[0] and "message" in seen_on_disk[0]
    events = read_trajectory(path)
    assert events[-1]["type"] in ("memory", "end")
    end = next(e for e in events if e["type"] == "end")
    assert end["status"] == "submitted" and end["tool_calls"] == 1
    tool_result = next(e for e in events if e["type"] == "message" and e["message"]["role"] == "tool")
    assert json.dumps(tool_result["message"])  # messages are stored exactly as sent


@pytest.mark.anyio
async def test_model_written_summaries_are_used_and_their_tokens_counted(tmp_path):
    long_city = "Paris"
    steps = [{"tool_calls": [call("get_weather", city=long_city)]}] * 12 + [{"answer": "done"}]
    model = ScriptedModel(steps, summaries=["- looked up Paris weather repeatedly: 18C, sunny"] * 10)
    events = []
    prof = profile("v2", "memory.budget_tokens=600", "memory.keep_recent=2", "memory.summary_tokens=60")
    agent = Agent(model, weather_registry(), prof, Limits(max_steps=20), on_event=events.append)
    result = await agent.run("Weather? " + "Please be thorough. " * 20)
    assert result.status == "submitted"
    folds = [e for e in events if e["type"] == "compaction" and e["stage"] == "summarize"]
    assert folds and all(e["source"] == "model" for e in folds)
    assert "looked up Paris weather" in agent.memory.messages()[0]["content"]
    step_tokens = sum(e["tokens_in"] for e in events if e["type"] == "step")
    assert result.tokens_in > step_tokens  # the summary requests were counted too
