"""Flow-control exceptions that end an agent run, each carrying its closing message.

The loop raises one of these from wherever the run ends; `Agent.run` turns it into a
`RunResult` with the matching status. They are not errors a user caused (those are in
`iclaw.errors`), so they do not derive from `IclawError`.
"""

from __future__ import annotations

__all__ = ["RunEnded", "Submitted", "LimitsExceeded", "FormatError", "GaveUp"]


class RunEnded(Exception):
    """Base: the run is over; `message` is the final text shown to the user."""

    status = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Submitted(RunEnded):
    """The model gave its final answer."""

    status = "submitted"


class LimitsExceeded(RunEnded):
    """A step, wall-time or token limit was reached before an answer."""

    status = "limits_exceeded"


class FormatError(RunEnded):
    """Too many consecutive replies that were neither a valid tool call nor an answer."""

    status = "format_error"


class GaveUp(RunEnded):
    """The failure budget ran out (or the model chose to give up); the message lists what was tried."""

    status = "gave_up"
