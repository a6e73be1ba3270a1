"""TurnProgress on a fake clock: phases, tokens, tok/s, the footer and the retry note."""

from __future__ import annotations

import io

from iclaw.progress import StderrProgress, TurnProgress, footer, retry_note


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_phases_tokens_and_rate_follow_the_events():
    clock = Clock()
    p = TurnProgress(clock)
    clock.now += 30.0  # idle at the prompt: not part of the turn
    p({"type": "step_start", "step": 1, "prompt_tokens": 1390})
    clock.now += 2.0
    assert p.status_line() == "2.0 s · prefill · 1,390 prompt tokens · 0 tokens"
    p({"type": "model_tokens", "tokens": 1})
    clock.now += 1.0
    p({"type": "model_tokens", "tokens": 11})
    assert p.status_line() == "3.0 s · generating · 11 tokens · 10.0 tok/s"
    p({"type": "step", "tokens_out": 12})
    p({"type": "tool_start", "id": "c1", "name": "read_file"})
    clock.now += 0.5
    assert p.status_line().startswith("3.5 s · tool read_file · 12 tokens")
    p({"type": "tool_end", "id": "c1", "name": "read_file", "ok": True})
    assert p.phase == "thinking" and p.tool_calls == 1


def test_footer_and_retry_note_wording():
    assert footer({"tokens_in": 1390, "tokens_out": 12, "wall_s": 17.08, "tool_calls": 2}) == "1,390 in · 12 out · 17.1 s · 2 tools"
    assert footer({"tokens_in": 5, "tokens_out": 1, "wall_s": 0.2, "tool_calls": 1}).endswith("1 tool")
    note = {"type": "model_retry", "attempt": 2, "max_retries": 4, "delay_s": 2.0, "reason": "endpoint unreachable"}
    assert retry_note(note) == "endpoint unreachable, retry 2/4 in 2 s"


def test_stderr_progress_prints_a_line_per_event():
    out = io.StringIO()
    printer = StderrProgress(out, clock=Clock())
    printer({"type": "step_start", "step": 1, "prompt_tokens": 10})
    printer({"type": "model_retry", "attempt": 1, "max_retries": 4, "delay_s": 0.5, "reason": "endpoint answered HTTP 503"})
    printer({"type": "end", "tokens_in": 10, "tokens_out": 2, "wall_s": 1.0, "tool_calls": 0})
    lines = out.getvalue().splitlines()
    assert lines[1].endswith("endpoint answered HTTP 503, retry 1/4 in 0.5 s")
    assert lines[2].endswith("10 in · 2 out · 1.0 s · 0 tools")
