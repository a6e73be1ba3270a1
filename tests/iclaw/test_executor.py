"""Parallel tool execution: overlap, call order, serialisation of unsafe calls, timeouts, retries."""

from __future__ import annotations

import anyio
import pytest
from pydantic import BaseModel

from iclaw.executor import ToolExecutor
from iclaw.providers.turn import ToolCall
from iclaw.tools import Tool, ToolRegistry, add_mock_tools
from iclaw.tools.tool import ToolResult


class PathArgs(BaseModel):
    path: str
    delay: float = 0.05


def _registry(log: list) -> ToolRegistry:
    async def slow_write(args: PathArgs) -> str:
        log.append(("begin", args.path))
        await anyio.sleep(args.delay)
        log.append(("end", args.path))
        return f"wrote {args.path}"

    async def command(args: PathArgs) -> str:
        log.append(("begin", "cmd"))
        await anyio.sleep(args.delay)
        log.append(("end", "cmd"))
        return "ran"

    registry = ToolRegistry([
        Tool("slow_write", "w", slow_write, PathArgs, read_only=False, parallel_safe=False, resource=lambda a: a.path),
        Tool("command", "c", command, PathArgs, read_only=False, parallel_safe=False),
    ])
    add_mock_tools(registry, [{
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
        "latency_s": 0.05,
        "responses": {"a": "A", "b": "B", "c": "C", "d": "D"},
    }])
    return registry


def _calls(*specs) -> list[ToolCall]:
    return [ToolCall(id=f"c{i}", name=name, arguments=args) for i, (name, args) in enumerate(specs)]


def _events():
    events: list[dict] = []
    return events, events.append


@pytest.mark.anyio
async def test_parallel_calls_overlap_and_results_keep_call_order():
    events, sink = _events()
    executor = ToolExecutor(_registry([]), parallel=True, max_concurrency=8, on_event=sink)
    results = await executor.run(_calls(*[("lookup", {"key": k}) for k in "abcd"]))
    assert [r.content for r in results] == ["A", "B", "C", "D"]
    kinds = [e["type"] for e in events]
    # All four started before the first one ended: they ran at the same time.
    assert kinds[:4] == ["tool_start"] * 4 and kinds[4:] == ["tool_end"] * 4


@pytest.mark.anyio
async def test_concurrency_limit_is_respected():
    events, sink = _events()
    executor = ToolExecutor(_registry([]), parallel=True, max_concurrency=2, on_event=sink)
    await executor.run(_calls(*[("lookup", {"key": k}) for k in "abcd"]))
    in_flight = peak = 0
    for event in events:
        in_flight += {"tool_start": 1, "tool_end": -1}.get(event["type"], 0)
        peak = max(peak, in_flight)
    assert peak == 2


@pytest.mark.anyio
async def test_unsafe_calls_on_the_same_resource_are_serialised_in_call_order():
    log: list = []
    executor = ToolExecutor(_registry(log), parallel=True)
    await executor.run(_calls(
        ("slow_write", {"path": "a.txt"}),
        ("slow_write", {"path": "a.txt", "delay": 0.01}),
        ("slow_write", {"path": "b.txt"}),
    ))
    a_events = [e for e in log if e[1] == "a.txt"]
    assert a_events == [("begin", "a.txt"), ("end", "a.txt"), ("begin", "a.txt"), ("end", "a.txt")]
    # b.txt does not conflict: it started before the first a.txt write ended.
    assert log.index(("begin", "b.txt")) < log.index(("end", "a.txt"))


@pytest.mark.anyio
async def test_a_command_without_resource_conflicts_with_every_unsafe_call():
    log: list = []
    executor = ToolExecutor(_registry(log), parallel=True)
    await executor.run(_calls(("slow_write", {"path": "a.txt"}), ("command", {"path": "-"}), ("slow_write", {"path": "b.txt"})))
    assert log == [("begin", "a.txt"), ("end", "a.txt"), ("begin", "cmd"), ("end", "cmd"), ("begin", "b.txt"), ("end", "b.txt")]


@pytest.mark.anyio
async def test_sequential_mode_never_overlaps():
    events, sink = _events()
    executor = ToolExecutor(_registry([]), parallel=False, on_event=sink)
    await executor.run(_calls(*[("lookup", {"key": k}) for k in "ab"]))
    assert [e["type"] for e in events] == ["tool_start", "tool_end", "tool_start", "tool_end"]


@pytest.mark.anyio
async def test_timeout_and_transient_retries():
    registry = ToolRegistry()
    add_mock_tools(registry, [{"name": "hang", "latency_s": 30}])
    events, sink = _events()
    executor = ToolExecutor(registry, timeout_s=0.05, max_retries=2, retry_backoff_s=0.001, on_event=sink)
    [result] = await executor.run(_calls(("hang", {})))
    assert (result.ok, result.error_kind, result.attempts) == (False, "timeout", 3)
    assert [e["attempt"] for e in events if e["type"] == "tool_retry"] == [1, 2]


@pytest.mark.anyio
async def test_permanent_failures_are_not_retried():
    attempts = []

    class Args(BaseModel):
        pass

    async def broken(args):
        attempts.append(1)
        raise ValueError("bad input file")

    executor = ToolExecutor(ToolRegistry([Tool("broken", "b", broken, Args)]), max_retries=3)
    [result] = await executor.run(_calls(("broken", {})))
    assert result.error_kind == "permanent" and len(attempts) == 1
    assert isinstance(result, ToolResult)
