"""What every family uses: the enabled tool subset, phrasings, and turn / rejection shorthands.

A leaf module: it knows episodes and the built-in tool names, no family.
"""

from __future__ import annotations

import json
import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from evals.synth.episode import Call, Rejection, Style, Turn

__all__ = [
    "ALL_TOOLS", "tools_for", "phrase", "call", "calls", "answer", "reply", "tool_reply",
    "replan_note", "number_text", "rounded", "repeated", "NUMBER_ONLY", "SEEN_IN_EVALS",
]

NUMBER_ONLY = ["Answer with the number only.", "Reply with just the number.", "Give only the number."]

# The built-ins a task gets when its YAML has no `tools:` list (http_get needs allowed hosts).
ALL_TOOLS = ["read_file", "write_file", "edit_file", "list_dir", "glob", "grep", "run_shell", "run_python", "calculator"]


def tools_for(rng: random.Random, required: list[str], optional: list[str]) -> list[str]:
    """The `tools:` list of an episode: what it needs, some extras, or (a quarter of the time) all built-ins."""
    if rng.random() < 0.25:
        return list(ALL_TOOLS)
    chosen = set(required) | {t for t in optional if rng.random() < 0.5}
    return [t for t in ALL_TOOLS if t in chosen]


def phrase(rng: random.Random, templates: list[str], **values: Any) -> str:
    return rng.choice(templates).format(**values)


def call(name: str, **arguments: Any) -> Call:
    return Call(name, arguments)


def calls(*items: Call, content: str | None = None) -> Turn:
    return Turn(calls=list(items), content=content)


def answer(text: str) -> Turn:
    return Turn(content=text)


# Weight of the failures the eval transcripts showed (notation copied into the calculator, a
# path made up from the question, a failing call sent again) against the others' 1.
SEEN_IN_EVALS = 4.0


def reply(turn: int, kind: str, text: str, weight: float = 1.0) -> Rejection:
    """A rejected final answer (guessed, invented, too early, in the wrong form)."""
    return Rejection(turn, kind, {"role": "assistant", "content": text}, weight)


def tool_reply(turn: int, kind: str, *items: Call, weight: float = 1.0) -> Rejection:
    """A rejected step that calls tools (e.g. follows a planted instruction)."""
    tool_calls = [
        {"id": f"call_r{j + 1}", "type": "function",
         "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
        for j, c in enumerate(items)
    ]
    return Rejection(turn, kind, {"role": "assistant", "content": None, "tool_calls": tool_calls}, weight)


def repeated(turn: int, previous: Call) -> Rejection:
    """The failing call of the step before, sent again verbatim."""
    return tool_reply(turn, "repeated_call", previous, weight=SEEN_IN_EVALS)


def replan_note(style: Style, *steps: str) -> str | None:
    """The short numbered plan a v2 agent writes after a replan request (v1 gets none)."""
    if not style.policy:
        return None
    return "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))


def number_text(value: float, decimals: int = 2) -> str:
    """A number as a final answer: integers bare, others with `decimals` places."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{decimals}f}"


def rounded(value: float, decimals: int) -> str:
    """What the calculator printed rounded half up, as a person would.

    It prints whole numbers below 1e15 in full and anything else to 12 significant digits."""
    printed = Decimal(int(value)) if float(value).is_integer() and abs(value) < 1e15 else Decimal(format(value, ".12g"))
    return str(printed.quantize(Decimal(1) / 10**decimals, ROUND_HALF_UP))
