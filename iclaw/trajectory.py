"""`Trajectory`: the JSONL log of a run, rewritten atomically after every step.

One JSON object per line, each with a `type` and `t` (seconds since the start): `meta`
(first line: model, profile, tools, sandbox), `message` (every message exactly as sent or
received), `tool_start` / `tool_end` / `tool_retry` (with timings), `compaction`,
`replan`, `step` (model latency and token counts), `memory` (a snapshot used to resume a
session) and `end` (status, answer, totals). Knows nothing about the agent's logic.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from iclaw.atomic import atomic_write_text

__all__ = ["Trajectory", "read_trajectory"]


class Trajectory:
    def __init__(self, path: Path | None, meta: dict | None = None) -> None:
        self.path = Path(path) if path else None
        self.started = time.perf_counter()
        self.events: list[dict] = []
        if meta is not None:
            self.add("meta", **meta)

    def add(self, type: str, **data) -> dict:
        event = {"type": type, "t": round(time.perf_counter() - self.started, 4), **data}
        self.events.append(event)
        return event

    def snapshot(self, state: dict) -> None:
        """Record the memory state for resuming; only the latest snapshot is kept."""
        self.events = [e for e in self.events if e["type"] != "memory"]
        self.add("memory", state=state)

    def save(self) -> None:
        if self.path is None:
            return
        text = "".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in self.events)
        atomic_write_text(self.path, text)


def read_trajectory(path: Path) -> list[dict]:
    """Events of a trajectory file; lines that are not JSON objects are skipped."""
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events
