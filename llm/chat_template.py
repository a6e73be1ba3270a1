"""ChatML rendering of OpenAI-style chats to token ids plus a loss mask, and the `<tool_call>` parser.

One renderer for SFT, DPO, the server and synthetic data, so a model sees at inference
exactly the layout it was trained on:

    <|im_start|>system
    {system}

    # Tools
    <tools>
    {"name": ..., "description": ..., "parameters": {...}}
    </tools>
    To call tools, reply with one or more blocks, each:
    <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call><|im_end|>
    <|im_start|>user
    {text}<|im_end|>
    <|im_start|>assistant
    <tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call><|im_end|>
    <|im_start|>tool
    <tool_response>{"name": "calculator", "content": "391"}</tool_response><|im_end|>

The loss mask is 1 on what the assistant writes (its text, its tool calls and its closing
`<|im_end|>`) and 0 elsewhere, and 0 on an assistant message marked `"weight": 0` (OpenAI's
fine-tuning format: kept as context, not learned). This module knows messages and tokens; it knows nothing
about models, sampling or HTTP.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from llm.errors import TokenizerError
from llm.tokenizer import Tokenizer

__all__ = ["ChatTemplate", "ParsedToolCall", "render_chat", "render_chat_text", "parse_tool_calls"]

ROLES = ("system", "user", "assistant", "tool")
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
_SPACE = re.compile(r"\s*")
TOOLS_INSTRUCTION = (
    "To call tools, reply with one or more blocks, each:\n"
    '<tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>'
)


@dataclass(frozen=True)
class ChatTemplate:
    """The layout is always ChatML; a template names the variant and its default system prompt.

    SmolLM2, for one, is `ChatTemplate("smollm2", "You are a helpful AI assistant named SmolLM,
    trained by Hugging Face")`: its template inserts that system turn when a chat has none.
    """

    name: str = "chatml"
    default_system: str | None = None


@dataclass
class ParsedToolCall:
    name: str
    arguments: dict
    raw: str  # the whole `<tool_call>...</tool_call>` block as it appeared in the text


@dataclass
class _Segment:
    text: str
    special: bool  # a special token's text (one id) rather than ordinary text
    mask: int


def render_chat(
    tok: Tokenizer,
    messages: list[dict],
    tools: list[dict] | None = None,
    add_generation_prompt: bool = False,
    template: ChatTemplate = ChatTemplate(),
) -> tuple[list[int], list[int]]:
    """Token ids of the chat and a loss mask of the same length (1 = the assistant wrote this token)."""
    ids: list[int] = []
    mask: list[int] = []
    for seg in _segments(messages, tools, add_generation_prompt, template):
        seg_ids = [tok.token_id(seg.text)] if seg.special else tok.encode(seg.text)
        ids.extend(seg_ids)
        mask.extend([seg.mask] * len(seg_ids))
    return ids, mask


def render_chat_text(
    tok: Tokenizer,
    messages: list[dict],
    tools: list[dict] | None = None,
    add_generation_prompt: bool = False,
    template: ChatTemplate = ChatTemplate(),
) -> str:
    """The text the model sees: `render_chat`'s ids decoded."""
    ids, _ = render_chat(tok, messages, tools, add_generation_prompt, template)
    return tok.decode(ids)


def parse_tool_calls(text: str) -> tuple[str, list[ParsedToolCall]]:
    """Split a completion into its prose and its `<tool_call>{json}</tool_call>` blocks.

    A block whose JSON is invalid, is not an object, lacks a string "name" or has arguments
    that are not an object stays in the content as text; this never raises. "arguments"
    may also be a JSON string holding the object (as in OpenAI's wire format).
    """
    calls: list[ParsedToolCall] = []
    kept: list[str] = []
    pos = 0
    decoder = json.JSONDecoder()
    while (start := text.find(TOOL_CALL_OPEN, pos)) != -1:
        body = start + len(TOOL_CALL_OPEN)
        # raw_decode rather than a regex up to the closing tag, so an argument string that
        # itself contains "</tool_call>" does not cut the JSON short.
        json_start = _skip_space(text, body)
        try:
            obj, json_end = decoder.raw_decode(text, json_start)
        except json.JSONDecodeError:
            obj, json_end = None, json_start
        close = _skip_space(text, json_end)
        call = _as_call(obj) if text.startswith(TOOL_CALL_CLOSE, close) else None
        if call is None:
            kept.append(text[pos:body])
            pos = body
            continue
        end = close + len(TOOL_CALL_CLOSE)
        calls.append(ParsedToolCall(name=call[0], arguments=call[1], raw=text[start:end]))
        kept.append(text[pos:start])
        pos = end
    kept.append(text[pos:])
    return "".join(kept).strip(), calls


def _segments(
    messages: list[dict], tools: list[dict] | None, add_generation_prompt: bool, template: ChatTemplate
) -> list[_Segment]:
    if not messages:
        raise TokenizerError("a chat needs at least one message")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            role = msg.get("role") if isinstance(msg, dict) else msg
            raise TokenizerError(f"message {i} has role {role!r}; expected one of {', '.join(ROLES)}")
    tools_block = _tools_block(tools) if tools else None

    segs: list[_Segment] = []
    rest = messages
    if messages[0]["role"] == "system":
        system: str | None = _content(messages[0], 0)
        rest = messages[1:]
    else:
        system = template.default_system
    if tools_block is not None:
        system = f"{system}\n\n{tools_block}" if system else tools_block
    if system is not None:
        segs += _turn("system", system)

    offset = len(messages) - len(rest)
    call_names: dict[str, str] = {}
    i = 0
    while i < len(rest):
        msg, index = rest[i], i + offset
        role = msg["role"]
        if role == "assistant":
            body = _assistant_body(msg, index, call_names)
            learn = _weight(msg, index)
            segs += [
                _Segment(IM_START, True, 0),
                _Segment("assistant\n", False, 0),
                # NOTE: encoded apart from the header, as at generation time, where the model's
                # first token always follows the header's "\n" and can never merge with it.
                _Segment(body, False, learn),
                _Segment(IM_END, True, learn),
                _Segment("\n", False, 0),
            ]
            i += 1
        elif role == "tool":
            # Consecutive tool results share one turn, one <tool_response> per line.
            lines = []
            while i < len(rest) and rest[i]["role"] == "tool":
                lines.append(_tool_response(rest[i], i + offset, call_names))
                i += 1
            segs += _turn("tool", "\n".join(lines))
        else:
            segs += _turn(role, _content(msg, index))
            i += 1
    if add_generation_prompt:
        segs += [_Segment(IM_START, True, 0), _Segment("assistant\n", False, 0)]
    return segs


def _weight(msg: dict, index: int) -> int:
    """An assistant message's loss weight: OpenAI's fine-tuning `weight`, 1 (learn it) unless 0.

    A weight of 0 keeps the message in the context but out of the loss: the slip a recovery
    conversation starts from is something the model must read and fix, never imitate.
    """
    weight = msg.get("weight", 1)
    if weight is None:  # Arrow fills a key some rows lack with None
        return 1
    if isinstance(weight, bool) or weight not in (0, 1):
        raise TokenizerError(f"message {index} has weight {weight!r}; an assistant message's weight is 0 or 1")
    return int(weight)


def _turn(role: str, body: str) -> list[_Segment]:
    # Header and body form one text run, exactly as a whole-string tokenization splits it at
    # the special tokens (Hugging Face's `apply_chat_template` followed by encoding does that).
    return [
        _Segment(IM_START, True, 0),
        _Segment(f"{role}\n{body}", False, 0),
        _Segment(IM_END, True, 0),
        _Segment("\n", False, 0),
    ]


def _content(msg: dict, index: int) -> str:
    """Message text: a string, None (empty) or OpenAI's list of {"type": "text", "text": ...} parts."""
    content = msg.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
    ):
        return "".join(p["text"] for p in content)
    raise TokenizerError(
        f"message {index} content must be a string or a list of text parts "
        '[{"type": "text", "text": ...}]; other kinds (images, audio) are not supported'
    )


def _assistant_body(msg: dict, index: int, call_names: dict[str, str]) -> str:
    text = _content(msg, index)
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise TokenizerError(f"message {index}: tool_calls must be a list")
    blocks = []
    for j, call in enumerate(calls):
        name, arguments = _call_name_and_arguments(call, f"message {index} tool call {j}")
        if isinstance(call, dict) and isinstance(call.get("id"), str):
            call_names[call["id"]] = name
        blocks.append(f"{TOOL_CALL_OPEN}{_dumps({'name': name, 'arguments': arguments})}{TOOL_CALL_CLOSE}")
    return "\n".join([text, *blocks] if text else blocks)


def _call_name_and_arguments(call: object, where: str) -> tuple[str, dict]:
    """Accepts OpenAI's {"id", "type": "function", "function": {"name", "arguments": str}} or {"name", "arguments"}."""
    fn = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise TokenizerError(f'{where} needs a "function" with a string "name"')
    arguments = _arguments_object(fn.get("arguments", {}))
    if arguments is None:
        raise TokenizerError(f"{where} ({fn['name']}): arguments must be a JSON object (or a string holding one)")
    return fn["name"], arguments


def _tool_response(msg: dict, index: int, call_names: dict[str, str]) -> str:
    name = msg.get("name") or call_names.get(msg.get("tool_call_id"))
    if not isinstance(name, str):
        raise TokenizerError(
            f"tool message {index} has no \"name\" and its tool_call_id {msg.get('tool_call_id')!r} matches "
            f"no earlier assistant tool call (known ids: {', '.join(call_names) or 'none'}); give one of them"
        )
    return f"<tool_response>{_dumps({'name': name, 'content': _content(msg, index)})}</tool_response>"


def _tools_block(tools: list[dict]) -> str:
    lines = []
    for j, tool in enumerate(tools):
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise TokenizerError(
                f'tool {j} needs a string "name" (OpenAI form: {{"type": "function", "function": {{"name": ...}}}})'
            )
        spec = {k: fn[k] for k in ("name", "description", "parameters") if k in fn}
        lines.append(_dumps(spec))
    return "# Tools\n<tools>\n" + "\n".join(lines) + "\n</tools>\n" + TOOLS_INSTRUCTION


def _dumps(obj: object) -> str:
    # Python's default separators (", " and ": ") and raw UTF-8, matching the documented layout.
    return json.dumps(obj, ensure_ascii=False)


def _skip_space(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()


def _as_call(obj: object) -> tuple[str, dict] | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    arguments = _arguments_object(obj.get("arguments", {}))
    return None if arguments is None else (obj["name"], arguments)


def _arguments_object(arguments: object) -> dict | None:
    """Tool-call arguments as a dict: given as an object or as a JSON string of one ("" = none); None if neither."""
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    return arguments if isinstance(arguments, dict) else None
