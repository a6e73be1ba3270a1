"""The bridge between one HTTP request (asyncio) and its sequences in the engine thread.

`RequestStream` submits a request's prompts (one sequence per prompt and choice), receives
the engine's outputs through a thread-safe callback onto an asyncio queue, and yields them
as (choice index, output) pairs until every sequence has finished. `abort` cancels what is
still running: the handlers call it when a client disconnects, so its KV blocks are freed.
Either way the request's one log line (`RequestLog`) is written when it ends.

A request with more sequences than the engine can ever hold is a 400 (retrying cannot
help); a full queue is a 429. Knows the engine's submit/abort interface and HTTP error
mapping; not the OpenAI shapes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import Request

from llm.errors import InferenceError
from llm.serve.api_errors import APIError
from llm.serve.batch_engine import BatchEngine, QueueFull
from llm.serve.request_log import RequestLog
from llm.serve.sequence import SamplingOptions, SequenceOutput

__all__ = ["RequestStream"]

# How often a non-streaming request checks whether its client is still connected.
_DISCONNECT_POLL_S = 0.5


class RequestStream:
    def __init__(
        self, engine: BatchEngine, jobs: list[tuple[list[int], list[SamplingOptions]]], request_id: str = "-"
    ) -> None:
        """Submit each (prompt, per-choice options); choice indices run over all jobs in order."""
        self._engine = engine
        self._log = RequestLog(request_id, sum(len(prompt) for prompt, _ in jobs))
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[SequenceOutput] = asyncio.Queue()
        self._choice: dict[int, int] = {}
        self._open: set[int] = set()
        wanted = sum(len(options) for _, options in jobs)
        if wanted > engine.capacity:
            raise APIError(
                400,
                f"this request asks for {wanted} sequences (prompts x n) but the server holds at most "
                f"{engine.capacity} at once (--max-batch {engine.max_batch} + --max-queue {engine.max_queue}); "
                "split it into smaller requests",
                code="request_too_large",
            )
        try:
            for prompt, options in jobs:
                base = len(self._choice)
                for j, sid in enumerate(engine.submit(prompt, options, self._sink)):
                    self._choice[sid] = base + j
                    self._open.add(sid)
        except QueueFull as exc:
            self.abort()
            raise APIError(429, str(exc), code="rate_limit_exceeded", headers={"Retry-After": "1"}) from exc
        except InferenceError as exc:
            self.abort()
            raise APIError(400, str(exc)) from exc

    def _sink(self, out: SequenceOutput) -> None:
        """Called by the engine thread."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, out)
        except RuntimeError:
            pass  # the event loop has shut down: nobody is listening any more

    async def outputs(self, request: Request | None = None) -> AsyncIterator[tuple[int, SequenceOutput]]:
        """(choice index, output) until all sequences finish; with `request`, abort if the client leaves."""
        checked = time.monotonic()
        while self._open:
            try:
                out = await asyncio.wait_for(self._queue.get(), _DISCONNECT_POLL_S) if request else await self._queue.get()
            except TimeoutError:
                out = None
            if request is not None and time.monotonic() - checked >= _DISCONNECT_POLL_S:
                checked = time.monotonic()
                if await request.is_disconnected():
                    self.abort()
                    return
            if out is None:
                continue
            self._log.add(out)
            if out.finished:
                self._open.discard(out.seq_id)
                if not self._open:
                    self._log.write()
            yield self._choice[out.seq_id], out

    def abort(self) -> None:
        if self._open:
            self._log.write(open_choices=len(self._open))
            self._engine.abort(sorted(self._open))
            self._open.clear()
