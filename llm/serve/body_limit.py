"""`BodyLimit`: refuse request bodies over `--max-body-mb` with a 413 before the app sees them.

A pure ASGI middleware (streams pass untouched). A declared `Content-Length` over the
limit is refused without buffering anything; a chunked body is kept only up to the limit.
Before the 413 goes out the rest of the body is read and dropped (up to `_DRAIN_FACTOR`
times the limit): a client still sending when the server closes would get a connection
reset instead of the answer. A body within the limit is buffered here and handed on, so
the app reads it as usual. Knows HTTP and the error shape, nothing about the routes.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm.serve.api_errors import APIError, error_response

__all__ = ["BodyLimit"]

_DRAIN_FACTOR = 16  # read and drop at most this many times the limit before answering 413


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        over = declared.isdigit() and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            over = over or size > self.max_bytes
            if not over:
                chunks.append(body)
            elif size > _DRAIN_FACTOR * self.max_bytes:
                break  # stop reading a flood; the client may see the connection close
            if not message.get("more_body", False):
                break
        if over:
            chunks.clear()
            return await self._refuse(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # later reads wait for http.disconnect, as before
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        mib = self.max_bytes / 2**20
        err = APIError(
            413,
            f"the request body is larger than this server's limit of {mib:g} MiB (--max-body-mb); send a smaller one",
            code="request_too_large",
            headers={"Connection": "close"},
        )
        await error_response(err)(scope, receive, send)
