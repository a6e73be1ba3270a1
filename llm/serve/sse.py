"""Server-sent events for streamed completions, cancelled the moment the client goes away.

Starlette notices a disconnected client only when it next writes a chunk (ASGI 2.4) — too
late for a request still waiting in the queue. `EngineStreamingResponse` also listens for
`http.disconnect` itself and runs `on_close` (which aborts the request's sequences and so
frees their KV blocks) however the stream ends.

Knows SSE framing and ASGI; nothing about the OpenAI shapes or the engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, Callable

from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["EngineStreamingResponse", "sse_data", "SSE_DONE"]

SSE_DONE = "data: [DONE]\n\n"


def sse_data(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


class EngineStreamingResponse(StreamingResponse):
    def __init__(self, content: AsyncIterable[str], on_close: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.create_task(self._watch(receive))
        try:
            await super().__call__(scope, _after(watcher, receive), send)
        except (ClientDisconnect, OSError):
            pass  # the client left mid-stream: nobody to report to, and on_close frees its work
        finally:
            watcher.cancel()
            self._on_close()

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._on_close()
                return


def _after(watcher: asyncio.Task, receive: Receive) -> Receive:
    """Once our watcher owns `receive`, Starlette's own listener (ASGI < 2.4) must not compete for
    messages: it waits on the watcher instead and then reports the disconnect."""

    async def wrapped() -> dict:
        await asyncio.shield(watcher)
        return {"type": "http.disconnect"}

    return wrapped
