"""Tool-use conversations and DPO pairs for the post-training tests (a module name unique across tests/)."""

from __future__ import annotations

import json

CALC_TOOL = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate arithmetic.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}


def calc_conversation(a: int, b: int) -> dict:
    args = json.dumps({"expression": f"{a}*{b}"})
    return {
        "messages": [
            {"role": "user", "content": f"What is {a} times {b}?"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "c1", "content": str(a * b)},
            {"role": "assistant", "content": f"{a} times {b} is {a * b}."},
        ],
        "tools": [CALC_TOOL],
    }


def calc_pair(a: int, b: int) -> dict:
    conv = calc_conversation(a, b)
    return {"prompt": conv["messages"][:1], "chosen": conv["messages"][1],
            "rejected": {"role": "assistant", "content": f"It is {a + b}."}, "tools": [CALC_TOOL]}


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)
