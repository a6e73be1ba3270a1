"""`RunCounters`: what an agent run used — steps, tool calls, tokens in and tokens out.

The one home of those four numbers: each eval result carries them (`evals.store`) and a
run's summary adds them up (`evals.summary`). Knows nothing about where they are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["RunCounters"]


@dataclass(kw_only=True)
class RunCounters:
    # kw_only: records that extend these keep their own positional fields first
    steps: int = 0
    tool_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def add(self, other: RunCounters) -> None:
        """Add `other`'s four counts to these, in place."""
        for f in fields(RunCounters):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
