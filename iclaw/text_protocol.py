"""Render a native tool-calling conversation as plain ChatML text, for models without tools.

Assistant tool calls become `<tool_call>{...}</tool_call>` blocks in the assistant's
content, and tool results become a user message of `<tool_response>` blocks — the same
shapes the DESIGN's chat template uses, so a model trained on them reads them back.
Knows nothing about the agent; a pure function over OpenAI-format messages.
"""

from __future__ import annotations

import json

__all__ = ["to_text_protocol"]


def to_text_protocol(messages: list[dict]) -> list[dict]:
    out: list[dict] = []
    names: dict[str, str] = {}
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append({"role": "user", "content": "\n".join(pending)})
            pending.clear()

    for message in messages:
        role = message.get("role")
        if role == "tool":
            name = names.get(message.get("tool_call_id", ""), "tool")
            body = json.dumps({"name": name, "content": message.get("content") or ""}, ensure_ascii=False)
            pending.append(f"<tool_response>{body}</tool_response>")
            continue
        flush()
        if role == "assistant" and message.get("tool_calls"):
            blocks = []
            for call in message["tool_calls"]:
                function = call["function"]
                names[call["id"]] = function["name"]
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except json.JSONDecodeError:
                    arguments = function.get("arguments")
                blocks.append(
                    "<tool_call>" + json.dumps({"name": function["name"], "arguments": arguments}, ensure_ascii=False) + "</tool_call>"
                )
            text = "\n".join(filter(None, [(message.get("content") or "").strip(), *blocks]))
            out.append({"role": "assistant", "content": text})
        else:
            out.append({"role": role, "content": message.get("content") or ""})
    flush()
    return out
