"""Hierarchical memory: the prompt the model sees, kept inside a token budget.

Layout of every prompt:

    system: the system prompt
            + pinned items (task, current plan, constraints, key facts, files touched)
            + memory blocks (summaries of older turns; summaries of summaries)
    the most recent exchanges, verbatim

Exchanges are *units* (a user message, or an assistant message with all its tool
results) so a tool result never loses the call it answers. When the prompt passes
`compact_at` of the budget, compaction brings it back under `compact_to`, cheapest step
first:

1. mask old tool outputs (keeping their most fact-like lines);
2. fold the oldest units into a summary block — written by the model, or extractive if
   the model fails;
3. when blocks outgrow `memory_share` of the budget, summarise the oldest blocks again
   into a higher-level block (summary of summaries);
4. as a last resort, fold recent units and cut the longest message, so the prompt never
   exceeds the budget.

Pinned items are never dropped. The v1 strategy `truncate` instead drops the oldest
units (keeping the first request) when the budget is full. Every compaction reports an
event. Token counts come from `iclaw.tokens`; the module knows nothing about tools or HTTP.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Callable

from iclaw.errors import IclawError
from iclaw.profile import MemoryConfig
from iclaw.summarizer import Summarizer, extractive_summary, key_lines, transcript_lines
from iclaw.tokens import TokenCounter, count_messages

__all__ = ["Memory", "MemoryBlock", "Pins"]

MAX_FACTS = 50
MAX_CONSTRAINTS = 10
MAX_FILES = 50
_USER_FACT = re.compile(r"^\s*(remember|note|important|key fact|fyi)\b\s*[:,-]?\s*(that\s+)?", re.IGNORECASE)
_CONSTRAINT = re.compile(r"\b(must|must not|never|do not|don't|only|always|without|at most|at least)\b", re.IGNORECASE)
_RESUME_NOTE = "(Earlier turns are summarised in the system message.) Continue."


@dataclass
class Unit:
    index: int
    messages: list[dict]
    masked: bool = False


@dataclass
class MemoryBlock:
    level: int
    first: int
    last: int
    text: str
    source: str  # "model" | "extractive"

    def render(self) -> str:
        kind = "summary of summaries" if self.level > 1 else "summary"
        return f"## turns {self.first}-{self.last} ({kind})\n{self.text}"


@dataclass
class Pins:
    task: str | None = None
    plan: str | None = None
    constraints: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def render(self) -> str:
        parts = []
        if self.task:
            parts.append(f"Task: {self.task}")
        if self.plan:
            parts.append(f"Current plan:\n{self.plan}")
        if self.constraints:
            parts.append("Constraints:\n" + "\n".join(f"- {c}" for c in self.constraints))
        if self.facts:
            parts.append("Key facts:\n" + "\n".join(f"- {f}" for f in self.facts))
        if self.files:
            parts.append("Files touched: " + ", ".join(self.files))
        return "\n".join(parts)


class Memory:
    def __init__(
        self,
        config: MemoryConfig,
        counter: TokenCounter,
        system_prompt: str,
        summarizer: Summarizer | None = None,
        on_event: Callable[[dict], None] | None = None,
    ) -> None:
        self.config = config
        self.counter = counter
        self.system_prompt = system_prompt
        self.summarizer = summarizer if config.summarizer == "model" else None
        self.on_event = on_event
        self.units: list[Unit] = []
        self.blocks: list[MemoryBlock] = []
        self.pins = Pins()
        self.next_index = 1

    # ---- recording -------------------------------------------------------------------

    def add(self, message: dict) -> None:
        """Append one OpenAI-format message; tool results join the assistant unit they answer."""
        role = message.get("role")
        if role == "tool":
            if not self.units or self.units[-1].messages[0].get("role") != "assistant":
                raise IclawError("a tool result must follow the assistant message that called the tool")
            self.units[-1].messages.append(message)
            return
        self.units.append(Unit(self.next_index, [message]))
        self.next_index += 1
        if role == "user" and self.config.pin:
            for sentence in _sentences(message.get("content") or ""):
                if _USER_FACT.match(sentence):
                    self.pin("fact", _USER_FACT.sub("", sentence).strip())

    def begin_task(self, text: str) -> None:
        """Pin a new request as the task, with the constraints it states."""
        if not self.config.pin:
            return
        self.pins.task = text.strip()
        for sentence in _sentences(text):
            if _CONSTRAINT.search(sentence) and sentence not in self.pins.constraints:
                self.pins.constraints.append(sentence[:300])
        del self.pins.constraints[:-MAX_CONSTRAINTS]

    def pin(self, kind: str, text: str) -> None:
        if not self.config.pin or not text.strip():
            return
        text = text.strip()
        if kind == "plan":
            self.pins.plan = text
        elif kind == "fact":
            if text not in self.pins.facts:
                self.pins.facts.append(text)
            if len(self.pins.facts) > MAX_FACTS:
                # The oldest facts leave the pinned list but stay in memory as a block.
                oldest = self.pins.facts.pop(0)
                self.blocks.insert(0, MemoryBlock(1, 0, 0, f"fact: {oldest}", "pinned"))
        elif kind == "constraint":
            if text not in self.pins.constraints:
                self.pins.constraints.append(text)
        elif kind == "task":
            self.pins.task = text
        else:
            raise IclawError(f"unknown pin kind {kind!r}")

    def note_paths(self, paths: list[str]) -> None:
        if not self.config.pin:
            return
        for path in paths:
            if path not in self.pins.files:
                self.pins.files.append(path)
        del self.pins.files[:-MAX_FILES]

    def clear(self) -> None:
        self.units.clear()
        self.blocks.clear()
        self.pins = Pins()
        self.next_index = 1

    def repair(self, note: str = "cancelled before it finished") -> list[dict]:
        """Give every unanswered tool call of the last unit a result (after a cancelled turn); return them."""
        if not self.units:
            return []
        unit = self.units[-1]
        calls = unit.messages[0].get("tool_calls") or []
        answered = {m.get("tool_call_id") for m in unit.messages[1:]}
        added = [{"role": "tool", "tool_call_id": c["id"], "content": note} for c in calls if c["id"] not in answered]
        unit.messages.extend(added)
        return added

    # ---- the prompt ------------------------------------------------------------------

    def system_message(self) -> dict:
        parts = [self.system_prompt.strip()]
        pinned = self.pins.render()
        if pinned:
            parts.append("# Pinned memory (kept for the whole session)\n" + pinned)
        if self.blocks:
            parts.append(
                "# Memory of earlier turns (oldest first)\n" + "\n\n".join(b.render() for b in self.blocks)
            )
        return {"role": "system", "content": "\n\n".join(parts)}

    def messages(self) -> list[dict]:
        """The prompt the model sees now."""
        out = [self.system_message()]
        verbatim = [m for unit in self.units for m in unit.messages]
        if verbatim and verbatim[0].get("role") != "user":
            out.append({"role": "user", "content": _RESUME_NOTE})
        return out + verbatim

    def count(self, tools: list[dict] | None = None) -> int:
        return count_messages(self.counter, self.messages(), tools)

    @property
    def budget(self) -> int:
        return self.config.budget_tokens

    # ---- compaction ------------------------------------------------------------------

    async def fit(self, tools: list[dict] | None = None) -> list[dict]:
        """Compact if the prompt passed `compact_at` of the budget; returns the events."""
        if self.count(tools) <= self.config.compact_at * self.budget:
            return []
        return await self.compact(tools)

    async def compact(self, tools: list[dict] | None = None, focus: str | None = None, force: bool = False) -> list[dict]:
        """Bring the prompt under `compact_to` of the budget (all older turns when `force`)."""
        events: list[dict] = []
        if self.config.strategy == "truncate":
            self._truncate(tools, events, force)
            return events
        target = self.config.compact_to * self.budget
        if self.config.mask_tool_outputs:
            self._mask(tools, target, events, force)
        if self.config.summarize and (force or self.count(tools) > target):
            await self._fold(tools, target, events, focus, force)
        if self.config.summarize:
            await self._resummarize(events, focus)
        if self.count(tools) > self.budget:
            await self._squeeze(tools, events)
        return events

    def _emit(self, events: list[dict], stage: str, before: int, tools: list[dict] | None, **extra) -> None:
        event = {"type": "compaction", "stage": stage, "before": before, "after": self.count(tools), **extra}
        events.append(event)
        if self.on_event:
            self.on_event(event)

    def _older_units(self) -> list[Unit]:
        keep = self.config.keep_recent
        return self.units[:-keep] if len(self.units) > keep else []

    def _mask(self, tools: list[dict] | None, target: float, events: list[dict], force: bool, units=None) -> None:
        before = self.count(tools)
        masked = 0
        for unit in units if units is not None else self._older_units():
            if not force and self.count(tools) <= target:
                break
            if unit.masked:
                continue
            names = {c["id"]: c["function"]["name"] for c in unit.messages[0].get("tool_calls") or []}
            for i, message in enumerate(unit.messages):
                content = message.get("content") or ""
                if message.get("role") != "tool" or self.counter.count(content) < self.config.mask_min_tokens:
                    continue
                unit.messages[i] = {**message, "content": _mask_text(names.get(message.get("tool_call_id"), "tool"), content, self.counter)}
                masked += 1
            unit.masked = True
        if masked:
            self._emit(events, "mask", before, tools, outputs=masked)

    async def _fold(self, tools, target: float, events: list[dict], focus: str | None, force: bool) -> None:
        candidates = self._older_units()
        if not candidates:
            return
        before = self.count(tools)
        chosen: list[Unit] = []
        remaining = before
        for unit in candidates:
            if not force and remaining + self.config.summary_tokens <= target and chosen:
                break
            chosen.append(unit)
            remaining -= count_messages(self.counter, unit.messages)
        messages = [m for unit in chosen for m in unit.messages]
        text, source = await self._summarize(transcript_lines(messages), _transcript(messages), self.config.summary_tokens, focus)
        self.units = self.units[len(chosen) :]
        self.blocks.append(MemoryBlock(1, chosen[0].index, chosen[-1].index, text, source))
        self._emit(events, "summarize", before, tools, units=len(chosen), source=source, first=chosen[0].index, last=chosen[-1].index)

    async def _resummarize(self, events: list[dict], focus: str | None) -> None:
        limit = self.config.memory_share * self.budget
        while True:
            sizes = [self.counter.count(b.render()) for b in self.blocks]
            total = sum(sizes)
            if total <= limit or not self.blocks:
                return
            take, taken = 0, 0
            while take < len(self.blocks) and (take < 2 or taken < total / 2):
                taken += sizes[take]
                take += 1
            merged_limit = max(self.config.summary_tokens, int(limit / 2))
            if taken <= merged_limit and take == len(self.blocks) and take == 1:
                return  # one block already as small as a merge would make it
            old = self.blocks[:take]
            lines = [line for b in old for line in b.text.splitlines() if line.strip()]
            text, source = await self._summarize(lines, "\n\n".join(b.render() for b in old), merged_limit, focus)
            block = MemoryBlock(max(b.level for b in old) + 1, old[0].first, old[-1].last, text, source)
            if self.counter.count(block.render()) >= taken:
                return  # no progress possible; the hard limit in _squeeze still holds
            before = sum(sizes)
            self.blocks = [block, *self.blocks[take:]]
            event = {"type": "compaction", "stage": "resummarize", "before": before,
                     "after": sum(self.counter.count(b.render()) for b in self.blocks),
                     "blocks": take, "level": block.level, "source": source}
            events.append(event)
            if self.on_event:
                self.on_event(event)

    async def _squeeze(self, tools, events: list[dict]) -> None:
        """Last resort for the hard limit: mask everything, fold (or drop) all but the last unit, cut text."""
        before = self.count(tools)
        for unit in self.units[:-1]:
            unit.masked = False  # allow re-masking with the stricter pass below
        self._mask(tools, self.budget, [], force=True, units=self.units[:-1])
        while self.count(tools) > self.budget and len(self.units) > 1:
            unit = self.units.pop(0)
            if not self.config.summarize:
                continue  # summaries switched off: the oldest unit is simply dropped
            text = extractive_summary(transcript_lines(unit.messages), self.config.summary_tokens // 4, self.counter)
            self.blocks.append(MemoryBlock(1, unit.index, unit.index, text, "extractive"))
            await self._resummarize([], None)
        self._cut_longest(tools)
        self._emit(events, "squeeze", before, tools)
        self._check_fits(tools)

    def _truncate(self, tools, events: list[dict], force: bool = False) -> None:
        before = self.count(tools)
        # Forced (the server said the prompt is too long, or /compact): drop a quarter at least.
        limit = min(self.budget, int(before * 0.75)) if force else self.budget
        if before <= limit:
            return
        keep_first = bool(self.units) and self.units[0].messages[0].get("role") == "user"
        dropped = 0
        while self.count(tools) > limit and len(self.units) > (2 if keep_first else 1):
            self.units.pop(1 if keep_first else 0)
            dropped += 1
        self._cut_longest(tools)
        self._emit(events, "truncate", before, tools, units=dropped)
        self._check_fits(tools)

    def _cut_longest(self, tools) -> None:
        while (over := self.count(tools) - self.budget) > 0:
            messages = [(unit, i, m) for unit in self.units for i, m in enumerate(unit.messages)]
            if not messages:
                return
            unit, i, message = max(messages, key=lambda t: len(t[2].get("content") or ""))
            content = message.get("content") or ""
            tokens = self.counter.count(content)
            if tokens <= 20:
                return
            keep = max(0, int(len(content) * max(0.0, (tokens - over - 20) / tokens) * 0.95))
            unit.messages[i] = {**message, "content": content[:keep] + "\n[... cut to fit the context window]"}

    def _check_fits(self, tools) -> None:
        used = self.count(tools)
        if used > self.budget:
            raise IclawError(
                f"the pinned memory, summaries and tool schemas alone need {used} tokens, more than "
                f"memory.budget_tokens={self.budget}; raise the budget or enable fewer tools"
            )

    async def _summarize(self, lines: list[str], transcript: str, max_tokens: int, focus: str | None) -> tuple[str, str]:
        if self.summarizer is not None:
            try:
                text = await self.summarizer.summarize(transcript, max_tokens, focus)
                if self.counter.count(text) <= max_tokens * 1.2:
                    return text, "model"
            except IclawError:
                pass  # the extractive summary below is the documented fallback
        return extractive_summary(lines, max_tokens, self.counter), "extractive"

    # ---- sessions --------------------------------------------------------------------

    def snapshot(self) -> dict:
        return {
            "units": [asdict(u) for u in self.units],
            "blocks": [asdict(b) for b in self.blocks],
            "pins": asdict(self.pins),
            "next_index": self.next_index,
        }

    def restore(self, state: dict) -> None:
        self.units = [Unit(**u) for u in state.get("units", [])]
        self.blocks = [MemoryBlock(**b) for b in state.get("blocks", [])]
        self.pins = Pins(**state.get("pins", {}))
        self.next_index = int(state.get("next_index", len(self.units) + 1))


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        out.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+", line) if s.strip())
    return out


def _mask_text(name: str, content: str, counter: TokenCounter) -> str:
    keys = key_lines(content, limit=3)
    kept = "".join(f"\n  {line}" for line in keys)
    header = f"[{name} output masked to save context ({counter.count(content)} tokens); call the tool again if you need it."
    return header + (f" Key lines:{kept}" if keys else "") + "]"


def _transcript(messages: list[dict], max_chars: int = 1500) -> str:
    """Plain-text transcript for a model summary; long contents are cut to keep the request small."""
    lines = []
    for message in messages:
        role = message.get("role")
        content = (message.get("content") or "").strip()
        if len(content) > max_chars:
            content = content[: max_chars // 2] + " [...] " + content[-max_chars // 2 :]
        for call in message.get("tool_calls") or []:
            lines.append(f"assistant called {call['function']['name']}({call['function'].get('arguments', '')})")
        if content:
            lines.append(f"{role}: {content}")
    return "\n".join(lines)
