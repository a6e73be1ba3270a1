"""Hierarchical memory: the budget holds, pinned items survive, summaries nest, v1 truncates."""

from __future__ import annotations

import pytest

from iclaw.errors import IclawError
from iclaw.memory import Memory
from iclaw.profile import MemoryConfig
from iclaw.tokens import EstimatingCounter

LOG = "\n".join(f"2024-05-01 10:{i:02d}:00 INFO worker-{i % 4} processed batch {1000 + i} in {i * 7} ms" for i in range(12))


def config(**overrides) -> MemoryConfig:
    base = {"budget_tokens": 1500, "keep_recent": 2, "summary_tokens": 120, "memory_share": 0.3, "summarizer": "extractive"}
    return MemoryConfig(**{**base, **overrides})


def add_exchange(memory: Memory, i: int, output: str = LOG, user: str | None = None) -> None:
    memory.add({"role": "user", "content": user or f"Turn {i}: check log part {i}."})
    memory.add({"role": "assistant", "content": None, "tool_calls": [
        {"id": f"c{i}", "type": "function", "function": {"name": "read_log", "arguments": f'{{"part": "{i}"}}'}}]})
    memory.add({"role": "tool", "tool_call_id": f"c{i}", "content": output})
    memory.add({"role": "assistant", "content": f"Part {i} looks fine."})


class RecordingSummarizer:
    def __init__(self, reply: str | None):
        self.reply = reply
        self.focus = []

    async def summarize(self, transcript, max_tokens, focus):
        self.focus.append(focus)
        if self.reply is None:
            raise IclawError("model failed")
        return self.reply


@pytest.mark.anyio
async def test_long_session_stays_within_budget_and_keeps_pinned_items():
    events = []
    memory = Memory(config(), EstimatingCounter(), "You are a test agent.", on_event=events.append)
    memory.begin_task("Audit the logs. You must never delete files.")
    memory.pin("plan", "1. read every part 2. report")
    for i in range(1, 61):
        fact = f" Remember: the vault code is VX-{1000 + i}." if i % 20 == 0 else ""
        add_exchange(memory, i, user=f"Turn {i}: check log part {i}.{fact}")
        await memory.fit()
        assert memory.count() <= memory.budget
    system = memory.messages()[0]["content"]
    for pinned in ("Audit the logs.", "You must never delete files.", "1. read every part", "VX-1020", "VX-1040", "VX-1060"):
        assert pinned in system
    stages = {e["stage"] for e in events}
    assert {"mask", "summarize", "resummarize"} <= stages
    assert max(b.level for b in memory.blocks) >= 2  # a summary of summaries exists
    assert len(memory.units) <= 2 * memory.config.keep_recent + 2


@pytest.mark.anyio
async def test_masking_comes_first_and_keeps_fact_lines():
    memory = Memory(config(budget_tokens=3000, compact_at=0.5, compact_to=0.45), EstimatingCounter(), "sys")
    secret = "NOTE: the rotation key for shard-7 = RK-5521 (decided in review)"
    add_exchange(memory, 1, LOG + "\n" + secret)
    for i in range(2, 5):
        add_exchange(memory, i)
    events = await memory.fit()
    assert events[0]["stage"] == "mask"
    first_tool = memory.units[1].messages[1]["content"]
    assert first_tool.startswith("[read_log output masked") and "RK-5521" in first_tool
    assert "processed batch 1000" not in first_tool


@pytest.mark.anyio
async def test_model_summaries_are_used_and_extractive_is_the_fallback():
    for reply, source in (("- checked parts 1-9, all fine", "model"), (None, "extractive")):
        summarizer = RecordingSummarizer(reply)
        memory = Memory(config(summarizer="model"), EstimatingCounter(), "sys", summarizer=summarizer)
        for i in range(1, 10):
            add_exchange(memory, i)
        events = await memory.compact(focus="errors")
        folded = [e for e in events if e["stage"] == "summarize"]
        assert folded and folded[0]["source"] == source
        assert summarizer.focus[0] == "errors"
        if reply:
            assert reply in memory.messages()[0]["content"]


@pytest.mark.anyio
async def test_forced_compaction_folds_older_turns_even_under_target():
    memory = Memory(config(budget_tokens=50_000), EstimatingCounter(), "sys")
    for i in range(1, 6):
        add_exchange(memory, i)
    assert await memory.fit() == []  # far under the budget: nothing to do
    events = await memory.compact(force=True)
    assert [e["stage"] for e in events][:2] == ["mask", "summarize"]
    assert len(memory.units) == memory.config.keep_recent
    assert memory.messages()[1] == {"role": "user", "content": memory.messages()[1]["content"]}


@pytest.mark.anyio
async def test_truncate_strategy_drops_the_oldest_turns_but_keeps_the_request():
    memory = Memory(config(strategy="truncate", pin=False), EstimatingCounter(), "sys")
    memory.add({"role": "user", "content": "The original request."})
    for i in range(1, 40):
        memory.add({"role": "assistant", "content": f"step {i} " + "words " * 40})
        await memory.compact()
        assert memory.count() <= memory.budget
    contents = [m["content"] for m in memory.messages()]
    assert contents[1] == "The original request."
    assert not any("step 1 " in c for c in contents)
    assert any("step 39 " in c for c in contents)


def test_tool_results_must_follow_their_call_and_repair_answers_dangling_calls():
    memory = Memory(config(), EstimatingCounter(), "sys")
    with pytest.raises(IclawError):
        memory.add({"role": "tool", "tool_call_id": "x", "content": "orphan"})
    memory.add({"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "t", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "t", "arguments": "{}"}}]})
    memory.add({"role": "tool", "tool_call_id": "a", "content": "done"})
    memory.repair("cancelled")
    assert [m.get("tool_call_id") for m in memory.units[-1].messages[1:]] == ["a", "b"]


def test_snapshot_round_trip():
    memory = Memory(config(), EstimatingCounter(), "sys")
    memory.begin_task("Do it. Only use Python.")
    add_exchange(memory, 1)
    memory.note_paths(["src/app.py"])
    clone = Memory(config(), EstimatingCounter(), "sys")
    clone.restore(memory.snapshot())
    assert clone.messages() == memory.messages()
    assert "Files touched: src/app.py" in clone.messages()[0]["content"]


@pytest.mark.anyio
async def test_impossible_budget_is_a_clear_error():
    memory = Memory(config(budget_tokens=256), EstimatingCounter(), "sys " * 400)
    memory.add({"role": "user", "content": "hi"})
    with pytest.raises(IclawError, match="memory.budget_tokens"):
        await memory.compact()


@pytest.mark.anyio
async def test_forced_truncation_drops_turns_even_under_the_budget():
    """v1 after a context-overflow error: the next prompt must be smaller, not the same."""
    memory = Memory(config(strategy="truncate", pin=False, budget_tokens=50_000), EstimatingCounter(), "sys")
    memory.add({"role": "user", "content": "The original request."})
    for i in range(1, 9):
        memory.add({"role": "assistant", "content": f"step {i} " + "words " * 40})
    before = memory.count()
    events = await memory.compact(force=True)
    assert events and events[0]["stage"] == "truncate"
    assert memory.count() <= 0.75 * before
    assert memory.messages()[1]["content"] == "The original request."
