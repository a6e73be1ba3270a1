"""Agent conversations for `llm bench serve --agent-trace`: each step re-sends the last one plus a call and a result."""

import json

import pytest

from llm.errors import ConfigError
from llm.serve.agent_trace import synthetic_trace, system_prompt, trajectory_trace


def test_synthetic_steps_grow_by_a_call_and_a_result_and_conversations_share_nothing():
    trace = synthetic_trace(conversations=3, steps=8, system_tokens=1400, salt="x-")
    assert [len(c) for c in trace] == [8, 8, 8]
    for conv in trace:
        for a, b in zip(conv, conv[1:]):
            assert b[: len(a)] == a and [m["role"] for m in b[len(a) :]] == ["assistant", "tool"]
            assert b[-2]["tool_calls"][0]["id"] == b[-1]["tool_call_id"]
    systems = [conv[0][0]["content"] for conv in trace]
    assert len(set(systems)) == 3 and len({s.split("\n", 1)[1] for s in systems}) == 1  # only the session line differs
    assert 4500 <= len(systems[0]) <= 1400 * 3.6 and '"name": "grep"' in systems[0]


def test_a_tiny_system_prompt_is_just_the_session_line():
    assert system_prompt("7", system_tokens=5) == "Session 7."


def test_trajectories_replay_their_messages_up_to_each_assistant_turn(tmp_path):
    events = [
        {"type": "meta", "model": "m"},
        {"type": "message", "message": {"role": "user", "content": "Fix it."}},
        {"type": "step", "step": 1},
        {"type": "message", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]}},
        {"type": "message", "message": {"role": "tool", "tool_call_id": "c1", "content": "x = 1"}},
        {"type": "message", "message": {"role": "assistant", "content": "Done."}},
        {"type": "end", "status": "submitted"},
    ]
    (tmp_path / "task.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    [conv] = trajectory_trace(tmp_path, steps=8, system_tokens=60)
    assert [[m["role"] for m in request] for request in conv] == [["system", "user"], ["system", "user", "assistant", "tool"]]
    assert trajectory_trace(tmp_path / "task.jsonl", steps=1, system_tokens=60) == [conv[:1]]
    (tmp_path / "bad.jsonl").write_text("not json")
    with pytest.raises(ConfigError, match="not a trajectory JSONL file"):
        trajectory_trace(tmp_path, steps=8)
    with pytest.raises(ConfigError, match="give a trajectory .jsonl file"):
        trajectory_trace(tmp_path / "missing", steps=8)
