"""What a model returns for one request, and the protocol every model implements.

`AssistantTurn` is provider-neutral: the OpenAI client, the scripted model and any
test double produce it; the agent consumes it. Nothing here talks HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

__all__ = ["ToolCall", "AssistantTurn", "ChatModel", "TextSink", "EventSink"]

TextSink = Callable[[str], None]
# Progress of one request: {"type": "model_tokens", "tokens": n} as tokens stream in,
# {"type": "model_retry", "attempt", "max_retries", "delay_s", "reason", "error"} before a resend.
EventSink = Callable[[dict], None]


@dataclass
class ToolCall:
    """One requested tool call. `parse_error` is set when `raw_arguments` was not a JSON object."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str = ""
    parse_error: str | None = None

    @classmethod
    def from_raw(cls, id: str, name: str, raw: str | dict | None) -> "ToolCall":
        """Build from the argument text a server sent; never raises on bad JSON."""
        if isinstance(raw, dict):  # some servers send an object instead of a JSON string
            return cls(id=id, name=name, arguments=raw, raw_arguments=json.dumps(raw, ensure_ascii=False))
        raw = raw or ""
        if not raw.strip():
            return cls(id=id, name=name, arguments={}, raw_arguments=raw)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            return cls(id=id, name=name, raw_arguments=raw, parse_error=f"arguments are not valid JSON: {exc}")
        if not isinstance(value, dict):
            return cls(id=id, name=name, raw_arguments=raw, parse_error="arguments must be a JSON object")
        return cls(id=id, name=name, arguments=value, raw_arguments=raw)

    def to_openai(self) -> dict:
        raw = self.raw_arguments or json.dumps(self.arguments, ensure_ascii=False)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": raw}}


@dataclass
class AssistantTurn:
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    finish_reason: str | None = None

    def to_message(self) -> dict:
        """The OpenAI chat message that records this turn in the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return message


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers an OpenAI-format chat: messages and tool schemas in, one turn out.

    Implementations may also accept the keywords `on_text: TextSink` (content deltas) and
    `on_event: EventSink` (token counts, retry notes); they advertise both with a true
    `streams` attribute.
    """

    async def complete(self, messages: list[dict], tools: list[dict]) -> AssistantTurn: ...
