"""Assemble an OpenAI streaming chat completion (SSE chunks) into one `AssistantTurn`.

Pure and synchronous: feed it parsed chunk objects, then call `finish()`. It tolerates
what local servers do differently from OpenAI:

- parallel calls that all reuse `index` 0 (a new `id`, or a new name after complete
  arguments, starts a new call);
- missing call ids (generated, unique per turn);
- `arguments` sent as an object instead of a JSON string fragment;
- a repeated `name` in every fragment of the same call.

Tool-call JSON written into `content` is not handled here but by the caller, with the
text parser. The module knows nothing about HTTP or SSE framing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from iclaw.providers.turn import AssistantTurn, ToolCall

__all__ = ["StreamAssembler"]


@dataclass
class _Slot:
    id: str | None = None
    name: str = ""
    arguments: str = ""


@dataclass
class StreamAssembler:
    content_parts: list[str] = field(default_factory=list)
    slots: list[_Slot] = field(default_factory=list)
    by_index: dict[int, int] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict | None = None

    def feed(self, chunk: dict) -> str:
        """Consume one chunk; return the content text it added (for live display)."""
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        added = ""
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never requested; ignore stray choices
            delta = choice.get("delta") or choice.get("message") or {}
            text = delta.get("content")
            if text:
                self.content_parts.append(text)
                added += text
            for fragment in delta.get("tool_calls") or []:
                self._feed_call(fragment)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return added

    def _feed_call(self, fragment: dict) -> None:
        function = fragment.get("function") or {}
        frag_id, frag_name, frag_args = fragment.get("id"), function.get("name"), function.get("arguments")
        index = fragment.get("index")
        slot = self._slot_for(index, frag_id, frag_name)
        if frag_id and not slot.id:
            slot.id = frag_id
        if frag_name and frag_name != slot.name:
            slot.name += frag_name
        if isinstance(frag_args, dict):
            slot.arguments = json.dumps(frag_args, ensure_ascii=False)
        elif frag_args:
            slot.arguments += frag_args

    def _slot_for(self, index: int | None, frag_id: str | None, frag_name: str | None) -> _Slot:
        key = index if index is not None else -1
        if key in self.by_index:
            slot = self.slots[self.by_index[key]]
            starts_new = (frag_id is not None and slot.id is not None and frag_id != slot.id) or (
                frag_name is not None and slot.name and frag_id is None and _is_complete_json(slot.arguments)
            )
            if not starts_new:
                return slot
        self.slots.append(_Slot())
        self.by_index[key] = len(self.slots) - 1
        return self.slots[-1]

    def finish(self) -> AssistantTurn:
        calls: list[ToolCall] = []
        seen: set[str] = set()
        for i, slot in enumerate(self.slots):
            if not slot.name:
                continue
            call_id = slot.id if slot.id and slot.id not in seen else f"call_{i}"
            seen.add(call_id)
            calls.append(ToolCall.from_raw(call_id, slot.name, slot.arguments))
        usage = self.usage or {}
        content = "".join(self.content_parts)
        return AssistantTurn(
            content=content or None,
            tool_calls=calls,
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            finish_reason=self.finish_reason,
        )


def _is_complete_json(text: str) -> bool:
    if not text.strip():
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True
