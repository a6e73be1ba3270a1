"""One log line per finished request, for whoever watches `llm serve`'s terminal.

`RequestLog` collects what the engine's outputs say about one request (its first token, its
completion tokens, how each choice finished) and writes one logfmt line to the
`llm.serve.requests` logger when the last choice finishes or the client goes away:

    id=chatcmpl-5f0c… prompt_tokens=1390 cached_tokens=1216 completion_tokens=12 ttft=0.84s total=1.92s finish=stop

`configure_logging` gives the server's loggers one stderr handler at the level of
`llm serve --log-level` (`--quiet` = warning: no request lines). Knows nothing about HTTP
or the OpenAI shapes.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

from llm.serve.sequence import SequenceOutput

__all__ = ["LOG_LEVELS", "RequestLog", "configure_logging", "request_logger", "server_logger"]

LOG_LEVELS = ("debug", "info", "warning", "error")
server_logger = logging.getLogger("llm.serve")
request_logger = logging.getLogger("llm.serve.requests")


@dataclass
class RequestLog:
    request_id: str
    prompt_tokens: int
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasons: list[str] = field(default_factory=list)
    written: bool = False

    def add(self, out: SequenceOutput) -> None:
        """Count one engine output of this request."""
        if self.first_token is None and out.token_ids:
            self.first_token = time.perf_counter()
        if out.finished:
            self.completion_tokens += out.completion_tokens
            self.cached_tokens += out.cached_tokens if out.index == 0 else 0  # each prompt counted once
            self.reasons.append(out.finish_reason or "abort")

    def line(self, open_choices: int = 0) -> str:
        """The logfmt line; `open_choices` still running are reported as aborted."""
        reasons = [*self.reasons, *["abort"] * open_choices]
        ttft = f"{self.first_token - self.started:.2f}s" if self.first_token is not None else "-"
        return (
            f"id={self.request_id} prompt_tokens={self.prompt_tokens} cached_tokens={self.cached_tokens} "
            f"completion_tokens={self.completion_tokens} ttft={ttft} total={time.perf_counter() - self.started:.2f}s "
            f"finish={','.join(dict.fromkeys(reasons)) or 'abort'}"
        )

    def write(self, open_choices: int = 0) -> None:
        """Log the line once (later calls do nothing)."""
        if not self.written:
            self.written = True
            request_logger.info(self.line(open_choices))


def configure_logging(level: str = "info", quiet: bool = False) -> None:
    """Send the server's log lines (start-up and requests) to stderr at `level`; `quiet` = warning."""
    server_logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    server_logger.addHandler(handler)
    server_logger.setLevel("WARNING" if quiet else level.upper())
    server_logger.propagate = False
