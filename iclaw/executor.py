"""`ToolExecutor`: run the tool calls of one assistant turn.

Parallel mode runs the calls concurrently in an anyio task group under a concurrency
limit. Calls that conflict — at least one is not `parallel_safe` and they touch the same
resource (or one of them has no declared resource, like a shell command) — share a
*lane* and run one after another in call order; lanes run side by side. Every call has
a timeout; transient failures are retried with exponential backoff (a tenacity loop)
when a retry budget is given. Results always come back in call order. Sequential mode (v1) runs calls one at
a time. Knows nothing about the model or the failure policy beyond the retry budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt, wait_exponential

from iclaw.providers.turn import ToolCall
from iclaw.tools.permissions import user_wait
from iclaw.tools.registry import ToolRegistry
from iclaw.tools.tool import ToolResult

__all__ = ["ToolExecutor", "lanes"]

_RETRIED_KINDS = ("transient", "timeout")


@dataclass
class _Shape:
    safe: bool
    key: str | None


class ToolExecutor:
    def __init__(
        self,
        registry: ToolRegistry,
        *,
        parallel: bool = True,
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 0,
        retry_backoff_s: float = 0.2,
        on_event: Callable[[dict], None] | None = None,
    ) -> None:
        self.registry = registry
        self.parallel = parallel
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.on_event = on_event or (lambda event: None)
        self.started = time.perf_counter()

    async def run(self, calls: list[ToolCall]) -> list[ToolResult]:
        results: list[ToolResult | None] = [None] * len(calls)
        if not self.parallel or len(calls) <= 1:
            for i, call in enumerate(calls):
                results[i] = await self._run_one(i, call)
            return [r for r in results if r is not None]
        limiter = anyio.CapacityLimiter(self.max_concurrency)

        async def run_lane(indices: list[int]) -> None:
            for i in indices:
                async with limiter:
                    results[i] = await self._run_one(i, calls[i])

        async with anyio.create_task_group() as group:
            for lane in lanes([self._shape(c) for c in calls]):
                group.start_soon(run_lane, lane)
        return [r for r in results if r is not None]

    def _shape(self, call: ToolCall) -> _Shape:
        tool = self.registry.get(call.name)
        if tool is None or call.parse_error:
            return _Shape(safe=True, key=None)  # fails fast without side effects
        key = None
        if tool.resource is not None:
            try:
                key = tool.resource(tool.args_model.model_validate(call.arguments))
            except ValueError:
                key = None  # invalid arguments: it will fail fast
        return _Shape(safe=tool.parallel_safe, key=key)

    def _now(self) -> float:
        return round(time.perf_counter() - self.started, 4)

    async def _run_one(self, index: int, call: ToolCall) -> ToolResult:
        tool = self.registry.get(call.name)
        self.on_event({"type": "tool_start", "index": index, "id": call.id, "name": call.name,
                       "arguments": call.arguments, "read_only": tool is None or tool.read_only, "t_abs": self._now()})
        attempts = 0

        async def run_attempt() -> ToolResult:
            nonlocal attempts
            attempts += 1
            return await self._attempt(call)

        def note_retry(state: RetryCallState) -> None:
            failed = state.outcome.result() if state.outcome is not None else None
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            self.on_event({"type": "tool_retry", "index": index, "id": call.id, "name": call.name,
                           "attempt": state.attempt_number, "error": (failed.content if failed else "")[:200], "delay_s": delay})

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_exponential(multiplier=self.retry_backoff_s, exp_base=2, min=0),  # backoff · 2^(n-1)
            retry=retry_if_result(lambda r: not r.ok and r.error_kind in _RETRIED_KINDS),
            retry_error_callback=lambda state: state.outcome.result(),  # out of retries: the last failure
            before_sleep=note_retry,
            sleep=anyio.sleep,
        )
        result = await retrying(run_attempt)
        result.attempts = attempts
        self.on_event({"type": "tool_end", "index": index, "id": call.id, "name": call.name, "ok": result.ok,
                       "error_kind": result.error_kind, "attempts": attempts, "duration_s": round(result.duration_s, 4),
                       "content": result.content, "t_abs": self._now()})
        return result

    async def _attempt(self, call: ToolCall) -> ToolResult:
        if call.parse_error:
            tool = self.registry.get(call.name)
            schema = f" Schema: {tool.parameters()}" if tool else ""
            return ToolResult(ok=False, content=f"{call.name}: {call.parse_error}.{schema}", error_kind="invalid_arguments")
        started = time.perf_counter()
        try:
            # The user's think time over an approval pushes the deadline back (see UserWait).
            with user_wait() as wait, anyio.fail_after(self.timeout_s) as scope:
                wait.scopes.append(scope)
                return await self.registry.call(call.name, call.arguments)
        except TimeoutError:
            return ToolResult(
                ok=False,
                content=f"{call.name} timed out after {self.timeout_s:g}s and was stopped",
                error_kind="timeout",
                duration_s=time.perf_counter() - started,
            )


def _conflict(a: _Shape, b: _Shape) -> bool:
    """An unsafe call without a resource (a command) conflicts with everything; otherwise same resource."""
    if a.safe and b.safe:
        return False
    if (not a.safe and a.key is None) or (not b.safe and b.key is None):
        return True
    return a.key is not None and a.key == b.key


def lanes(shapes: list[_Shape]) -> list[list[int]]:
    """Group call indices into lanes: conflicting calls share a lane, in call order."""
    parent = list(range(len(shapes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(shapes):
        for j in range(i + 1, len(shapes)):
            b = shapes[j]
            if _conflict(a, b):
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(shapes)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])
