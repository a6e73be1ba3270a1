"""Synthetic tool-use chats for `llm bench sft`, built in code so the benchmark needs no data file.

The rows have the shape real SFT data has here: a system prompt with tool schemas, user
turns, assistant tool calls (one or two per turn), tool responses of very different
lengths (a short number, a file of a few hundred tokens) and assistant prose. Lengths vary
so that packing has something to do. Everything is a function of the seed, so two
benchmark processes (ours and TRL's) build exactly the same rows.

This module knows chat rows and the renderer; it knows nothing about models or timing.
"""

from __future__ import annotations

import json
import random

from llm.chat_template import ChatTemplate
from llm.data.packing import Example, render_examples
from llm.errors import DataError
from llm.tokenizer import Tokenizer

__all__ = ["BENCH_TOOLS", "synthetic_chat_rows", "bench_examples"]


def _tool(name: str, description: str, **params: str) -> dict:
    props = {k: {"type": "string", "description": v} for k, v in params.items()}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": props, "required": list(params)},
        },
    }


BENCH_TOOLS = [
    _tool("calculator", "Evaluate an arithmetic expression.", expression="The expression, e.g. 17*23."),
    _tool("read_file", "Read a text file of the workspace.", path="Path relative to the workspace."),
    _tool("search_notes", "Full-text search over the user's notes.", query="Words to look for."),
]

_WORDS = (
    "the report lists every order shipped last quarter with its customer region total and status while "
    "late deliveries are flagged in red and the summary table at the end compares each month against "
    "the budget so that the team can see which products sold above plan and which suppliers missed "
    "their dates a short note explains how refunds were counted and why two invoices appear twice"
).split()


def _prose(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n_words)]
    return " ".join(words).capitalize() + "."


def _call(call_id: str, name: str, **arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def _arithmetic(rng: random.Random) -> list[dict]:
    a, b = rng.randint(12, 999), rng.randint(12, 999)
    return [
        {"role": "user", "content": f"What is {a} times {b}?"},
        {"role": "assistant", "content": None, "tool_calls": [_call("c1", "calculator", expression=f"{a}*{b}")]},
        {"role": "tool", "tool_call_id": "c1", "content": str(a * b)},
        {"role": "assistant", "content": f"{a} × {b} = {a * b}."},
    ]


def _file_summary(rng: random.Random) -> list[dict]:
    path = f"reports/q{rng.randint(1, 4)}-{rng.randint(100, 999)}.txt"
    lines = "\n".join(_prose(rng, rng.randint(8, 20)) for _ in range(rng.randint(5, 40)))
    return [
        {"role": "user", "content": f"Summarize {path} for me in a few sentences."},
        {"role": "assistant", "content": None, "tool_calls": [_call("c1", "read_file", path=path)]},
        {"role": "tool", "tool_call_id": "c1", "content": lines},
        {"role": "assistant", "content": " ".join(_prose(rng, rng.randint(10, 25)) for _ in range(rng.randint(2, 6)))},
    ]


def _parallel_search(rng: random.Random) -> list[dict]:
    q1, q2 = rng.sample(_WORDS, 2)
    return [
        {"role": "user", "content": f"Find my notes about {q1} and about {q2}, then compare them."},
        {"role": "assistant", "content": None, "tool_calls": [
            _call("c1", "search_notes", query=q1), _call("c2", "search_notes", query=q2)]},
        {"role": "tool", "tool_call_id": "c1", "content": _prose(rng, rng.randint(20, 60))},
        {"role": "tool", "tool_call_id": "c2", "content": _prose(rng, rng.randint(20, 60))},
        {"role": "assistant", "content": _prose(rng, rng.randint(30, 80))},
    ]


def _plain(rng: random.Random) -> list[dict]:
    turns = []
    for _ in range(rng.randint(1, 3)):
        turns.append({"role": "user", "content": _prose(rng, rng.randint(8, 30)) + " What do you think?"})
        turns.append({"role": "assistant", "content": _prose(rng, rng.randint(20, 120))})
    return turns


_KINDS = (_arithmetic, _file_summary, _parallel_search, _plain)


def synthetic_chat_rows(n: int, seed: int = 0) -> list[dict]:
    """`n` SFT rows (`{"messages", "tools"}`) mixing tool calls, tool output and prose."""
    rng = random.Random(seed)
    return [{"messages": rng.choice(_KINDS)(rng), "tools": BENCH_TOOLS} for _ in range(n)]


def bench_examples(tok: Tokenizer, template: ChatTemplate, seq_len: int, min_tokens: int, seed: int = 0) -> list[Example]:
    """Rendered rows (cut at `seq_len`) holding at least `min_tokens` tokens in all."""
    n = 32
    while True:
        examples = render_examples(tok, synthetic_chat_rows(n, seed), template, seq_len)
        if not any(e.n_targets for e in examples):
            raise DataError(f"--seq-len {seq_len} cuts every chat before the assistant speaks; raise it")
        if sum(len(e.ids) for e in examples) >= min_tokens:
            return examples
        n *= 2
