"""Streamed assistant text split into content deltas and complete tool calls.

The model writes tool calls as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
blocks (see `llm.chat_template`). While streaming, prose is released as it arrives, except
a tail that might be the start of `<tool_call>`, and whitespace, which is held until more
prose follows (so the streamed content matches what `parse_tool_calls` returns for the
whole text: stripped, without the blank lines between calls). A block is held until it
closes and is then parsed by the shared `parse_tool_calls`: a valid block becomes a tool
call event, an invalid one is released as plain content. That is why arguments reach the
client in one fragment per call rather than token by token: a call is only announced once
it is known to parse.

Knows the ChatML tool-call syntax; nothing about tokens, models or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.chat_template import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, ParsedToolCall, parse_tool_calls

__all__ = ["ToolCallStream", "ContentDelta", "ToolCallEvent"]


@dataclass
class ContentDelta:
    text: str


@dataclass
class ToolCallEvent:
    index: int  # position among this reply's tool calls
    call: ParsedToolCall


Event = ContentDelta | ToolCallEvent


class ToolCallStream:
    def __init__(self) -> None:
        self._buf = ""  # text not yet classified
        self._space = ""  # whitespace after the released content, released only if prose follows
        self._started = False
        self.calls: list[ParsedToolCall] = []

    def push(self, text: str) -> list[Event]:
        self._buf += text
        events: list[Event] = []
        while True:
            start = self._buf.find(TOOL_CALL_OPEN)
            if start < 0:
                keep = _prefix_overlap(self._buf, TOOL_CALL_OPEN)
                self._prose(self._buf[: len(self._buf) - keep], events)
                self._buf = self._buf[len(self._buf) - keep :]
                return events
            self._prose(self._buf[:start], events)
            self._buf = self._buf[start:]
            end = self._block_end()
            if end < 0:
                return events
            if end == 0:  # not a valid call: the tag is prose, and scanning resumes right after it
                self._prose(TOOL_CALL_OPEN, events)
                self._buf = self._buf[len(TOOL_CALL_OPEN) :]
                continue
            call = parse_tool_calls(self._buf[:end])[1][0]
            self._space = ""
            events.append(ToolCallEvent(len(self.calls), call))
            self.calls.append(call)
            self._buf = self._buf[end:]

    def finish(self) -> list[Event]:
        """The reply ended: an unclosed block is prose; trailing whitespace is dropped."""
        events: list[Event] = []
        self._prose(self._buf, events)
        self._buf = self._space = ""
        return events

    def _block_end(self) -> int:
        """For the buffer starting with `<tool_call>`: the end of the valid block it starts, 0 if it
        cannot be one (decided the way `parse_tool_calls` decides), or -1 while more text is needed.

        The JSON object is delimited by brace matching that respects strings, so an argument
        string holding "</tool_call>" does not end the block early.
        """
        body = self._buf[len(TOOL_CALL_OPEN) :].lstrip()
        if not body:
            return -1
        if body[0] != "{":
            return 0
        obj_end = _object_end(body)
        if obj_end < 0:
            return -1
        after = body[obj_end:].lstrip()
        if len(after) < len(TOOL_CALL_CLOSE) and TOOL_CALL_CLOSE.startswith(after):
            return -1
        if not after.startswith(TOOL_CALL_CLOSE):
            return 0
        end = len(self._buf) - len(after) + len(TOOL_CALL_CLOSE)
        return end if parse_tool_calls(self._buf[:end])[1] else 0

    def _prose(self, text: str, events: list[Event]) -> None:
        text = self._space + text
        if not self._started:
            text = text.lstrip()
        body = text.rstrip()
        self._space = text[len(body) :]
        if body:
            events.append(ContentDelta(body))
            self._started = True


def _prefix_overlap(text: str, tag: str) -> int:
    """Length of the longest tail of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def _object_end(text: str) -> int:
    """Index just past the "}" that closes the object `text` starts with; -1 if it is not closed yet."""
    depth, in_str, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1
