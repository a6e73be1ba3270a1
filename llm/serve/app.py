"""The FastAPI application: routes, API-key check, error handlers, engine start/stop.

`create_app(engine, model, api_key, max_body_bytes)` wires an already-loaded engine into
HTTP routes; `llm.serve.server` loads the model and runs the app under uvicorn. Route
handlers are thin: they check the model name and hand over to `chat`, `completions` or the
tokenizer. Tokenizing and rendering run in worker threads, never on the event loop, so a
huge prompt cannot stall /health or other streams; bodies over the limit get a 413.
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from llm.serve.api_errors import APIError, error_response, install_error_handlers
from llm.serve.batch_engine import BatchEngine
from llm.serve.body_limit import BodyLimit
from llm.serve.chat import create_chat_completion
from llm.serve.completions import create_completion
from llm.serve.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    DetokenizeRequest,
    DetokenizeResponse,
    ErrorResponse,
    HealthResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from llm.serve.request_options import ServedModel, check_ids, tokenize_request

__all__ = ["create_app"]

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 429, 500)}
DEFAULT_MAX_BODY_BYTES = 8 * 2**20
_STREAMED = {"text/event-stream": {"schema": {"type": "string", "description": "Server-sent events when stream=true."}}}


def create_app(
    engine: BatchEngine, model: ServedModel, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        try:
            yield
        finally:
            engine.shutdown()

    app = FastAPI(
        title="llm serve",
        description="OpenAI-compatible chat and text completions with continuous batching over a paged KV cache.",
        version="1",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    if api_key:
        app.add_middleware(_BearerAuth, api_key=api_key)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # outermost: nothing buffers more than the limit

    def check_model(name: str | None) -> None:
        if name is not None and name != model.name:
            raise APIError(
                404,
                f"the model {name!r} does not exist; this server serves {model.name!r}",
                param="model",
                code="model_not_found",
            )

    def card() -> ModelCard:
        return ModelCard(id=model.name, created=model.created, max_model_len=model.max_model_len)

    @app.get("/health", response_model=HealthResponse, responses={503: {"model": ErrorResponse}})
    async def health() -> HealthResponse | JSONResponse:
        """200 once the model is loaded and the engine runs; 503 if the engine has stopped."""
        if not engine.alive:
            reason = f": {engine.error}" if engine.error else ""
            return error_response(APIError(503, f"the engine is not running{reason}", code="engine_down"))
        return HealthResponse()

    @app.get("/v1/models", response_model=ModelList, responses=_ERRORS)
    async def list_models() -> ModelList:
        return ModelList(data=[card()])

    @app.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=_ERRORS)
    async def get_model(model_id: str) -> ModelCard:
        check_model(model_id)
        return card()

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        responses={**_ERRORS, 200: {"content": _STREAMED}},
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> ChatCompletion | Response:
        check_model(body.model)
        return await create_chat_completion(body, model, engine, request)

    @app.post("/v1/completions", response_model=Completion, responses={**_ERRORS, 200: {"content": _STREAMED}})
    async def completions(body: CompletionRequest, request: Request) -> Completion | Response:
        check_model(body.model)
        return await create_completion(body, model, engine, request)

    @app.post("/tokenize", response_model=TokenizeResponse, responses=_ERRORS)
    async def tokenize(body: TokenizeRequest) -> Response:
        check_model(body.model)
        return await anyio.to_thread.run_sync(_tokenize_response, body, model)

    @app.post("/detokenize", response_model=DetokenizeResponse, responses=_ERRORS)
    async def detokenize(body: DetokenizeRequest) -> DetokenizeResponse:
        check_model(body.model)
        if body.tokens:
            check_ids(body.tokens, model, "tokens")
        return DetokenizeResponse(prompt=await anyio.to_thread.run_sync(model.tokenizer.decode, body.tokens))

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(engine.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def _tokenize_response(body: TokenizeRequest, model: ServedModel) -> Response:
    """Tokens and their JSON, both in a worker thread: a million ids take a while to serialise too."""
    ids = tokenize_request(body, model)
    out = TokenizeResponse(tokens=ids, count=len(ids), max_model_len=model.max_model_len)
    return Response(out.model_dump_json(), media_type="application/json")


class _BearerAuth:
    """Every route but /health needs `Authorization: Bearer <api key>` (pure ASGI: streams untouched)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            return await self.app(scope, receive, send)
        what = "no Authorization header" if not given else "a wrong API key"
        err = APIError(
            401,
            f"this server needs an API key: send `Authorization: Bearer <key>` (the request had {what})",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await error_response(err)(scope, receive, send)
