"""Summaries for the hierarchical memory: by the model, or extractive when the model fails.

`ModelSummarizer` asks the chat model (with `SUMMARY_SYSTEM_PROMPT`) to compress a
transcript. `extractive_summary` needs no model: it keeps the lines that carry facts
(numbers, identifiers, paths, "remember"/"must"-style statements), the user's requests
and a one-line trace of each tool call, and drops the least important lines first until
the result fits. Lines are tagged (`fact:`, `user:`, `did:`, `said:`) so a later
summary of summaries can keep facts ahead of actions.

Knows nothing about the memory's layout: it turns messages (or earlier summaries) into
text of a bounded size.
"""

from __future__ import annotations

import json
import re
from typing import Protocol

from iclaw.errors import IclawError
from iclaw.prompts import SUMMARY_SYSTEM_PROMPT
from iclaw.providers.turn import ChatModel
from iclaw.tokens import TokenCounter

__all__ = ["Summarizer", "ModelSummarizer", "extractive_summary", "transcript_lines", "fact_score", "key_lines"]

_KEYWORDS = re.compile(
    r"\b(remember|note|important|key|password|secret|token|deadline|must|never|always|only|id|code|"
    r"version|port|owner|budget|constraint|decided|decision|answer|result|total|error|failed)\b",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d")
_IDENT = re.compile(r"[\w.-]+/[\w./-]+|\b[A-Z][A-Z0-9_-]{2,}\b|\b\w+_\w+\b|\b[A-Z][a-z]+[A-Z]\w*\b")
_ASSIGN = re.compile(r"\S\s*(=|:)\s*\S")
_PRIORITY = {"fact": 3, "user": 2, "said": 1, "did": 1}
# A fact line scores at least 4 (e.g. a keyword plus two other signals); a plain log line
# with numbers, a timestamp and an upper-case level scores 3 and is not a fact.
_FACT_THRESHOLD = 4


class Summarizer(Protocol):
    async def summarize(self, transcript: str, max_tokens: int, focus: str | None) -> str: ...


class ModelSummarizer:
    """Summaries written by the chat model itself; raises IclawError when it returns nothing useful."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        # Summary requests cost tokens too; the agent adds these to its run totals.
        self.tokens_in = 0
        self.tokens_out = 0

    async def summarize(self, transcript: str, max_tokens: int, focus: str | None) -> str:
        focus_text = f"\nGive priority to: {focus}." if focus else ""
        system = SUMMARY_SYSTEM_PROMPT.format(max_words=max(20, int(max_tokens * 0.6)), focus=focus_text)
        turn = await self.model.complete([{"role": "system", "content": system}, {"role": "user", "content": transcript}], [])
        self.tokens_in += turn.tokens_in
        self.tokens_out += turn.tokens_out
        text = (turn.content or "").strip()
        if not text or turn.tool_calls:
            raise IclawError("the model returned no summary")
        return text


def fact_score(line: str) -> int:
    """How likely a line is to carry a fact worth keeping (0 = noise)."""
    score = 0
    if _KEYWORDS.search(line):
        score += 2
    if _DIGITS.search(line):
        score += 1
    if _IDENT.search(line):
        score += 1
    if _ASSIGN.search(line):
        score += 1
    return score


def key_lines(text: str, limit: int = 3, max_chars: int = 160) -> list[str]:
    """The `limit` most fact-like lines of `text`, in their original order."""
    candidates = [
        (fact_score(line), i, line.strip()[:max_chars]) for i, line in enumerate(_sentences(text)) if line.strip()
    ]
    best = sorted((c for c in candidates if c[0] >= _FACT_THRESHOLD), key=lambda c: (-c[0], c[1]))[:limit]
    return [line for _, _, line in sorted(best, key=lambda c: c[1])]


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        out.extend(part for part in re.split(r"(?<=[.!?])\s+(?=[A-Z])", line) if part.strip())
    return out


def _short(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 3] + "..."


def transcript_lines(messages: list[dict]) -> list[str]:
    """Tagged lines describing `messages` (user requests, calls, outcomes, facts)."""
    lines: list[str] = []
    names: dict[str, str] = {}
    for message in messages:
        role, content = message.get("role"), message.get("content") or ""
        if role == "user":
            head = _short(content, 200)
            lines.append("user: " + head)
            lines.extend("fact: " + f for f in key_lines(content, limit=4) if f not in head)
        elif role == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names[call.get("id", "")] = function.get("name", "?")
                lines.append(f"did: {function.get('name')}({_short(_args(function.get('arguments')), 100)})")
            if content.strip():
                head = _short(content, 200)
                lines.append("said: " + head)
                lines.extend("fact: " + f for f in key_lines(content, limit=3) if f not in head)
        elif role == "tool":
            name = names.get(message.get("tool_call_id", ""), "tool")
            first = next((ln for ln in content.splitlines() if ln.strip()), "(empty)")
            lines.append(f"did: {name} -> {_short(first, 120)}")
            lines.extend("fact: " + f for f in key_lines(content, limit=3))
        elif role == "system" and content.strip():
            lines.append("said: " + _short(content, 200))
    return lines


def _args(raw: object) -> str:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return raw
    if isinstance(raw, dict):
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in raw.items())
    return str(raw)


def extractive_summary(lines: list[str], max_tokens: int, counter: TokenCounter) -> str:
    """Keep `lines` in order, dropping the least important (then oldest) until they fit `max_tokens`."""
    seen: set[str] = set()
    unique = []
    for line in lines:
        if line not in seen:
            seen.add(line)
            unique.append(line)
    costs = [counter.count(line) + 1 for line in unique]
    total = sum(costs)
    keep = [True] * len(unique)
    drop_order = sorted(range(len(unique)), key=lambda i: (_priority(unique[i]), i))
    for i in drop_order:
        if total <= max_tokens:
            break
        keep[i] = False
        total -= costs[i]
    return "\n".join(line for line, k in zip(unique, keep) if k)


def _priority(line: str) -> int:
    tag = line.split(":", 1)[0]
    if tag in _PRIORITY:
        return _PRIORITY[tag]
    return 3 if fact_score(line) >= _FACT_THRESHOLD else 1
