"""`ScriptedModel`: a deterministic model that replays a fixed list of steps.

Each step has the shape of a task's `oracle:` entry:
`{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}` or `{"answer": "..."}`, or
`{"content": "..."}` (text that may itself contain `<tool_call>` blocks, to exercise the
text fallback), optionally combined (`content` + `tool_calls`) and with `delay_s` to
simulate a slow model. A step may also be a callable `(messages, tools) -> step dict`
for tests that react to what the agent sent.

When the steps run out it repeats the last answer (or answers ""). Memory-summary
requests (recognised by `SUMMARY_MARKER`) never consume a step: they get the next entry
of `summaries`, or an empty reply so the memory uses its extractive fallback.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import anyio

from iclaw.errors import IclawError
from iclaw.prompts import SUMMARY_MARKER
from iclaw.providers.turn import AssistantTurn, EventSink, TextSink, ToolCall
from iclaw.tokens import EstimatingCounter, count_messages

__all__ = ["ScriptedModel"]

_STEP_KEYS = {"tool_calls", "answer", "content", "delay_s"}
Step = dict[str, Any] | Callable[[list[dict], list[dict]], dict[str, Any]]


class ScriptedModel:
    streams = True

    def __init__(self, steps: list[Step], summaries: list[str] | None = None, name: str = "scripted") -> None:
        for i, step in enumerate(steps):
            if not callable(step):
                _check_step(i, step)
        self.steps = list(steps)
        self.summaries = list(summaries or [])
        self.name = name
        self.position = 0
        self.requests: list[list[dict]] = []  # every prompt received, for tests and demos
        self.counter = EstimatingCounter()
        self._last_answer = ""

    async def complete(
        self,
        messages: list[dict],
        tools: list[dict],
        *,
        on_text: TextSink | None = None,
        on_event: EventSink | None = None,
    ) -> AssistantTurn:
        self.requests.append(copy.deepcopy(messages))
        tokens_in = count_messages(self.counter, messages, tools)
        if messages and str(messages[0].get("content") or "").startswith(SUMMARY_MARKER):
            summary = self.summaries.pop(0) if self.summaries else ""
            return AssistantTurn(content=summary, tokens_in=tokens_in, tokens_out=self.counter.count(summary))
        step = self._next_step(messages, tools)
        if step.get("delay_s"):
            await anyio.sleep(float(step["delay_s"]))
        calls = [
            ToolCall.from_raw(c.get("id") or f"call_{self.position}_{j}", c["name"], c.get("arguments") or {})
            for j, c in enumerate(step.get("tool_calls") or [])
        ]
        content = step.get("answer", step.get("content"))
        if "answer" in step:
            self._last_answer = step["answer"]
        tokens_out = self.counter.count(content or "") + sum(self.counter.count(c.raw_arguments) + 2 for c in calls)
        if on_event is not None and tokens_out:
            on_event({"type": "model_tokens", "tokens": tokens_out})
        if content and on_text:
            for word in content.split(" "):
                on_text(word + " ")
        return AssistantTurn(
            content=content,
            tool_calls=calls,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            finish_reason="tool_calls" if calls else "stop",
        )

    def _next_step(self, messages: list[dict], tools: list[dict]) -> dict[str, Any]:
        if self.position >= len(self.steps):
            return {"answer": self._last_answer}
        step = self.steps[self.position]
        self.position += 1
        if callable(step):
            step = step(messages, tools)
            _check_step(self.position - 1, step)
        return step


def _check_step(index: int, step: Any) -> None:
    if not isinstance(step, dict):
        raise IclawError(f"scripted step {index} must be a mapping, got {type(step).__name__}")
    unknown = set(step) - _STEP_KEYS
    if unknown:
        raise IclawError(f"scripted step {index}: unknown keys {sorted(unknown)} (allowed: {sorted(_STEP_KEYS)})")
    for call in step.get("tool_calls") or []:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise IclawError(f"scripted step {index}: each tool call needs a 'name' (got {call!r})")
