"""`BodyLimit`: refuse request bodies over `--max-body-mb` with a 413 before the app sees them.

A pure ASGI middleware (streams pass untouched). A declared `Content-Length` over the
limit is refused at once, without reading the body; a chunked body is read only up to
the limit, then refused. A body within the limit is buffered here and handed on, so the
app reads it as usual. Knows HTTP and the error shape, nothing about the routes.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm.serve.api_errors import APIError, error_response

__all__ = ["BodyLimit"]


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, receive, send)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send)
            chunks.append(body)
            if not message.get("more_body", False):
                break
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
