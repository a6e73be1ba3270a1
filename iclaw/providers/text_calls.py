"""Tool calls written as text, for models (or servers) without native tool calling.

Recognised forms, in this order:
- ChatML blocks `<tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>` (one or
  more; an unclosed block at the very end counts, as a truncated stream leaves it);
- ReAct lines `Action: <tool>` followed by `Action Input: <json or text>`;
- a reply that is nothing but one JSON object `{"name": ..., "arguments": ...}` naming a
  known tool (what some local servers put in `content`).

The parser never raises: it returns the calls it understood, the remaining text, and the
problems it saw so the agent can ask the model to fix its format. It knows nothing about
the tools beyond their names and, to map a plain-text Action Input, their schemas.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from iclaw.providers.turn import ToolCall

__all__ = ["ParsedText", "parse_text_tool_calls"]

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_ACTION = re.compile(
    r"^\s*Action\s*:\s*(?P<name>[\w.\-]+)\s*$\s*^\s*Action\s+Input\s*:\s*(?P<input>.*?)(?=^\s*(?:Thought|Action|Observation)\s*:|\Z)",
    re.MULTILINE | re.DOTALL,
)


@dataclass
class ParsedText:
    content: str
    calls: list[ToolCall] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_text_tool_calls(
    text: str | None,
    schemas: dict[str, dict] | None = None,
    id_prefix: str = "call_text_",
) -> ParsedText:
    """Extract tool calls from `text`. `schemas` maps tool name → JSON schema (known tools)."""
    text = text or ""
    known = schemas or {}
    calls: list[ToolCall] = []
    problems: list[str] = []

    def make(name: str, arguments: dict | str) -> None:
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        calls.append(ToolCall.from_raw(f"{id_prefix}{len(calls)}", name, raw))

    if "<tool_call>" in text:
        for body in _BLOCK.findall(text):
            obj = _json_object(body)
            if obj is None or not isinstance(obj.get("name"), str):
                problems.append(f"a <tool_call> block is not a JSON object with a \"name\": {body[:120]!r}")
                continue
            arguments = obj.get("arguments", obj.get("parameters", {}))
            if isinstance(arguments, str):
                parsed = _json_object(arguments)
                arguments = parsed if parsed is not None else arguments
            make(obj["name"], arguments)
        rest = _BLOCK.sub("", text).strip()
        return ParsedText(content=rest, calls=calls, problems=problems)

    if re.search(r"^\s*Action\s*:", text, re.MULTILINE):
        for match in _ACTION.finditer(text):
            name, raw_input = match.group("name"), match.group("input").strip()
            obj = _json_object(raw_input)
            if obj is None:
                obj = _plain_input(raw_input, known.get(name))
                if obj is None:
                    problems.append(f"Action Input for {name} is not a JSON object: {raw_input[:120]!r}")
                    continue
            make(name, obj)
        if not calls and not problems:
            problems.append("an 'Action:' line must be followed by an 'Action Input:' line")
        rest = text[: text.find("Action")].strip() if calls else text
        return ParsedText(content=rest, calls=calls, problems=problems)

    stripped = _strip_fence(text.strip())
    if stripped.startswith("{") and stripped.endswith("}"):
        obj = _json_object(stripped)
        if obj and obj.get("name") in known and isinstance(obj.get("arguments", {}), (dict, str)):
            make(obj["name"], obj.get("arguments", {}))
            return ParsedText(content="", calls=calls)
    return ParsedText(content=text, calls=calls, problems=problems)


def _json_object(text: str) -> dict | None:
    text = _strip_fence(text.strip())
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        # A model often appends prose after the object: decode the first value only.
        try:
            value, _ = json.JSONDecoder().raw_decode(text)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def _strip_fence(text: str) -> str:
    if text.startswith("```"):
        text = re.sub(r"^```[\w-]*\s*", "", text)
        text = re.sub(r"\s*```$", "", text)
    return text


def _plain_input(raw: str, schema: dict | None) -> dict | None:
    """Map a plain-text Action Input onto the tool's only required (or only) parameter."""
    if not schema:
        return None
    props = list((schema.get("properties") or {}).keys())
    required = schema.get("required") or []
    target = required[0] if len(required) == 1 else (props[0] if len(props) == 1 else None)
    if target is None:
        return None
    return {target: raw.strip().strip('"')}
