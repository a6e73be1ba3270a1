import pytest
from pydantic import ValidationError

from iclaw.errors import IclawError
from iclaw.tools import FaultSpec, MockToolSpec, ToolRegistry, add_mock_tools, inject_faults

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "responses": {"Paris": "18C, sunny", "Oslo": "2C, snow"},
    "default": "unknown city",
}


@pytest.mark.anyio
async def test_mock_tool_answers_by_first_required_parameter():
    registry = ToolRegistry()
    add_mock_tools(registry, [WEATHER])
    assert registry.schemas()[0]["function"]["parameters"] == WEATHER["parameters"]
    assert (await registry.call("get_weather", {"city": "Oslo"})).content == "2C, snow"
    assert (await registry.call("get_weather", {"city": "Rome"})).content == "unknown city"
    missing = await registry.call("get_weather", {})
    assert not missing.ok and missing.error_kind == "invalid_arguments" and "city" in missing.content


def test_mock_spec_is_strict():
    with pytest.raises(ValidationError):
        MockToolSpec.model_validate({**WEATHER, "latency": 1})


@pytest.mark.anyio
async def test_faults_fail_exactly_the_listed_calls_with_a_classified_kind():
    registry = ToolRegistry()
    add_mock_tools(registry, [WEATHER])
    inject_faults(registry, [
        FaultSpec(tool="get_weather", calls=[1], error="EIO: temporary read error"),
        {"tool": "get_weather", "calls": [3], "error": "permission denied by upstream"},
    ])
    first = await registry.call("get_weather", {"city": "Paris"})
    assert (first.ok, first.error_kind, first.content) == (False, "transient", "EIO: temporary read error")
    assert (await registry.call("get_weather", {"city": "Paris"})).ok
    third = await registry.call("get_weather", {"city": "Paris"})
    assert (third.ok, third.error_kind) == (False, "permanent")
    assert (await registry.call("get_weather", {"city": "Paris"})).ok


def test_fault_for_unknown_tool_or_bad_call_number_is_an_error():
    registry = ToolRegistry()
    with pytest.raises(IclawError, match="unknown tool"):
        inject_faults(registry, [{"tool": "nope", "calls": [1], "error": "x"}])
    with pytest.raises(ValidationError):
        FaultSpec(tool="x", calls=[0], error="x")


@pytest.mark.anyio
async def test_a_crashing_tool_is_an_observation(registry):
    from pydantic import BaseModel

    from iclaw.tools import Tool

    class NoArgs(BaseModel):
        pass

    def boom(args):
        raise RuntimeError("kaboom")

    registry.register(Tool("boom", "crashes", boom, NoArgs))
    result = await registry.call("boom", {})
    assert not result.ok and "kaboom" in result.content and result.error_kind == "permanent"
    unknown = await registry.call("nope", {})
    assert unknown.error_kind == "invalid_arguments" and "read_file" in unknown.content
