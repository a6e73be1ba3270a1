"""`TurnProgress`: what a running turn is doing, from the agent's events — and how to say it.

It follows one turn: the elapsed time, the phase (`prefill` until the first token,
`generating` while tokens stream, `tool NAME` while a tool runs), the tokens generated
so far and their rate. `status_line()` is the live line the terminal draws under the
reply; `footer()` the one line after a turn (`1,390 in · 12 out · 17.1 s · 2 tools`);
`retry_note()` the line for a resend (`endpoint unreachable, retry 2/4 in 2 s`).
`StderrProgress` prints the same progress as plain lines for `iclaw run -v`.

Knows nothing about rich or the terminal: it reads events and returns strings.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Callable, TextIO

__all__ = ["TurnProgress", "StderrProgress", "footer", "retry_note"]


def footer(summary: dict) -> str:
    """One line after a turn: tokens in and out, wall time, tool calls."""
    calls = summary.get("tool_calls", 0)
    return (f"{summary.get('tokens_in', 0):,} in · {summary.get('tokens_out', 0):,} out · "
            f"{summary.get('wall_s', 0.0):.1f} s · {calls} tool{'' if calls == 1 else 's'}")


def retry_note(event: dict) -> str:
    """`endpoint unreachable, retry 2/4 in 2 s` for a `model_retry` event."""
    reason = event.get("reason") or "request failed"
    return f"{reason}, retry {event['attempt']}/{event['max_retries']} in {event['delay_s']:.3g} s"


class TurnProgress:
    """The state of the running turn; feed it every agent event."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.start()
        self.ended = True  # the next step or tool starts a new turn (and its clock)

    def start(self) -> None:
        now = self.clock()
        self.ended = False
        self.turn_started = now
        self.step = 0
        self.phase = "prefill"
        self.prompt_tokens = 0
        self.done_tokens = 0  # tokens of finished steps
        self.step_tokens = 0  # tokens of the step being generated
        self.first_token_at: float | None = None
        self.rate: float | None = None
        self.running: dict[str, str] = {}  # tool call id -> name
        self.tool_calls = 0

    @property
    def tokens(self) -> int:
        return self.done_tokens + self.step_tokens

    def elapsed(self) -> float:
        return self.clock() - self.turn_started

    def __call__(self, event: dict) -> None:
        kind = event.get("type")
        if self.ended and kind in ("step_start", "tool_start"):
            self.start()
        now = self.clock()
        if kind == "step_start":
            self.step = event.get("step", self.step + 1)
            self.phase = "prefill"
            self.prompt_tokens = event.get("prompt_tokens", 0)
            self.step_tokens, self.first_token_at = 0, None
        elif kind in ("model_tokens", "text"):
            if self.first_token_at is None:
                self.first_token_at = now
            self.phase = "generating"
            if kind == "model_tokens":
                self.step_tokens = event["tokens"]
                self._update_rate(now)
        elif kind == "step":
            self.step_tokens = 0
            self.done_tokens += event.get("tokens_out", 0)
            # A rate over less than 50 ms (an in-process model, a cached reply) says nothing.
            if self.first_token_at is not None and now - self.first_token_at > 0.05 and event.get("tokens_out"):
                self.rate = event["tokens_out"] / (now - self.first_token_at)
            self.phase = "thinking"
        elif kind == "tool_start":
            self.running[str(event.get("id"))] = event["name"]
            self.phase = f"tool {event['name']}"
        elif kind == "tool_end":
            self.running.pop(str(event.get("id")), None)
            self.tool_calls += 1
            self.phase = f"tool {next(iter(self.running.values()))}" if self.running else "thinking"
        elif kind == "end":
            self.ended = True

    def _update_rate(self, now: float) -> None:
        if self.first_token_at is not None and now - self.first_token_at > 0.05 and self.step_tokens > 1:
            self.rate = (self.step_tokens - 1) / (now - self.first_token_at)

    def status_line(self) -> str:
        """`12.3 s · generating · 45 tokens · 8.1 tok/s` (the prompt size while prefilling)."""
        parts = [f"{self.elapsed():.1f} s", self.phase]
        if self.phase == "prefill" and self.prompt_tokens:
            parts.append(f"{self.prompt_tokens:,} prompt tokens")
        parts.append(f"{self.tokens:,} tokens")
        if self.rate is not None:
            parts.append(f"{self.rate:.1f} tok/s")
        return " · ".join(parts)


class StderrProgress:
    """`iclaw run -v`: one plain line per step, tool call and retry, and the footer at the end."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.stream = stream or sys.stderr
        self.progress = TurnProgress(clock)

    def _say(self, text: str) -> None:
        print(f"[{self.progress.elapsed():6.1f} s] {text}", file=self.stream, flush=True)

    def __call__(self, event: dict) -> None:
        self.progress(event)
        kind = event.get("type")
        p = self.progress
        if kind == "step_start":
            self._say(f"step {p.step} · prefill · {p.prompt_tokens:,} prompt tokens")
        elif kind == "step":
            rate = f" · {p.rate:.1f} tok/s" if p.rate is not None else ""
            self._say(f"step {p.step} · {event.get('tokens_out', 0):,} tokens out · {p.tokens:,} so far{rate}")
        elif kind == "tool_start":
            args = json.dumps(event.get("arguments") or {}, ensure_ascii=False)
            self._say(f"tool {event['name']} {args if len(args) <= 100 else args[:97] + '...'}")
        elif kind == "tool_end":
            status = "ok" if event["ok"] else f"failed: {event.get('error_kind')}"
            self._say(f"{event['name']} -> {status} ({event.get('duration_s', 0):.2f} s)")
        elif kind == "model_retry":
            self._say(retry_note(event))
        elif kind == "tool_retry":
            self._say(f"retrying {event['name']} (attempt {event['attempt'] + 1})")
        elif kind == "replan":
            self._say("tool failures: asking the model for a new plan")
        elif kind == "compaction":
            self._say(f"memory {event['stage']}: {event['before']:,} -> {event['after']:,} tokens")
        elif kind == "end":
            self._say(footer(event))
