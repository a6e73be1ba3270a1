"""When and how long to wait before resending a failed HTTP request to the model.

Retry on connection errors, timeouts, 429 and 5xx; never on other 4xx (the request
itself is wrong and will fail again). `Retry-After` (seconds or an HTTP date) wins over
the exponential schedule: `RetryPolicy.wait` is the custom wait the tenacity loop uses.
Knows nothing about chat completions.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

from tenacity import RetryCallState

__all__ = ["RetryPolicy", "is_retryable_status", "parse_retry_after"]


def is_retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header, or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Wait before retry number `attempt` (1-based): base · 2^(attempt-1), capped; Retry-After wins."""
        if retry_after is not None:
            return min(retry_after, self.max_delay_s)
        return min(self.base_delay_s * (2 ** (attempt - 1)), self.max_delay_s)

    def wait(self, state: RetryCallState) -> float:
        """tenacity wait: the schedule for the attempts made so far, or the failure's `retry_after`."""
        failure = state.outcome.exception() if state.outcome is not None else None
        return self.delay(state.attempt_number, getattr(failure, "retry_after", None))
