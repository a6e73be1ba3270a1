"""`OpenAIChatModel`: an async client for any OpenAI-compatible `/v1/chat/completions`.

Works with `llm serve`, vLLM, llama.cpp's server, Ollama and OpenAI. Streams by default
(SSE, read with httpx-sse) and assembles tool-call deltas with `StreamAssembler`; falls
back to parsing tool-call text in `content` when a server returns calls as text. Retries
(a tenacity loop) connection errors, timeouts, 429 and 5xx with exponential backoff
(honouring `Retry-After`), never
other 4xx — and never a refused connection or a DNS failure on the first contact (a
server that was never reached is not coming back in two seconds). A context-length
error becomes `ContextOverflow` so the agent compacts its memory instead of resending
the same prompt. `list_models` / `check_served` ask `GET /models` what the server serves,
so a wrong name is caught before the first prompt. Progress goes to an optional event
sink: `model_retry` before each resend, `model_tokens` as tokens stream in.

The transport is injectable (`httpx.MockTransport`, `httpx.ASGITransport`) so tests need
no network. This module knows nothing about the agent loop or tools beyond their schemas.
"""

from __future__ import annotations

import json
import socket
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import anyio
import httpx
from httpx_sse import EventSource
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from iclaw.errors import ContextOverflow, ModelError, ModelUnreachable
from iclaw.providers.retry import RetryPolicy, is_retryable_status, parse_retry_after
from iclaw.providers.stream import StreamAssembler
from iclaw.providers.text_calls import parse_text_tool_calls
from iclaw.providers.turn import AssistantTurn, EventSink, TextSink
from iclaw.suggest import did_you_mean
from iclaw.tokens import EstimatingCounter, TokenCounter, count_messages

__all__ = ["OpenAIChatModel", "normalize_base_url"]

_OVERFLOW_HINTS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "exceeds the available context",
    "too many tokens",
    "prompt is too long",
    "reduce the length",
)
# What a connect error says when the host does not resolve or nothing listens on the port.
_NEVER_REACHED_HINTS = (
    "connection refused",
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated",
    "getaddrinfo failed",
    "errno 111",
    "errno -2",
    "errno -3",
)
# The placeholder model name used when none is configured: it takes a server's only model.
PLACEHOLDER_MODEL = "default"
# Optional request fields some servers reject; dropped (once) when a 4xx names them.
_OPTIONAL_FIELDS = ("stream_options", "parallel_tool_calls")


def normalize_base_url(base_url: str) -> str:
    """'http://host:8000' → 'http://host:8000/v1'; a URL that already has a path is kept."""
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        from iclaw.errors import ProfileError

        raise ProfileError(f"base_url {base_url!r} is not an http(s) URL (example: http://127.0.0.1:8000/v1)")
    return url if parts.path not in ("", "/") else url + "/v1"


# Tokens per reply when the caller sets none: without a cap a small model that never emits
# its end token runs to the server's context limit on every step. None leaves it to the server.
DEFAULT_REPLY_TOKENS = 1024


class _Retry(Exception):
    """Internal: the attempt failed in a way worth retrying; `final` is raised when retries run out."""

    def __init__(self, final: Exception, retry_after: float | None = None, note: str = "") -> None:
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after
        self.note = note  # what went wrong, in a few words, for the retry note


class OpenAIChatModel:
    streams = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120,
        *,
        stream: bool = True,
        retry: RetryPolicy | None = None,
        temperature: float | None = None,
        max_tokens: int | None = DEFAULT_REPLY_TOKENS,
        parallel_tool_calls: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.name = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.stream = stream
        self.retry = retry or RetryPolicy()
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.parallel_tool_calls = parallel_tool_calls
        self.transport = transport
        self.sleep = sleep or anyio.sleep
        self.counter = counter or EstimatingCounter()
        self._dropped_fields: set[str] = set()
        self.contacted = False  # set once the server has answered anything

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def list_models(self) -> list[str] | None:
        """The model ids the server serves (`GET /models`), or None when it does not list them.

        Never retried: it is the first contact, and a server that is down is reported at once.
        """
        url = self.base_url + "/models"
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=min(10.0, self.timeout_s)) as client:
                response = await client.get(url, headers=self._headers())
        except httpx.HTTPError as exc:
            raise ModelUnreachable(url, _reason(exc)) from exc
        self.contacted = True
        if response.status_code in (404, 405, 501):
            return None  # the server has no model list; the first request will tell
        if response.status_code >= 400:
            message = f"{url} answered HTTP {response.status_code}: {_error_detail(response.text)}"
            if response.status_code in (401, 403):
                message += " (check the api key: the endpoint's api_key_env variable)"
            raise ModelError(message, response.status_code)
        try:
            data = response.json().get("data") or []
            return [str(card["id"]) for card in data if isinstance(card, dict) and "id" in card]
        except (ValueError, AttributeError) as exc:
            raise ModelError(f"{url} sent a model list that is not OpenAI's shape: {response.text[:200]!r}") from exc

    async def check_served(self, name: str | None = None) -> list[str]:
        """Check that the server serves `name` (default: this client's model) and switch to it.

        Returns the names served. Raises `ModelError` listing them when it is not one of them
        (the placeholder name `default` takes the server's model when it serves exactly one).
        """
        wanted = name or self.model
        served = await self.list_models()
        if served is None:
            served = []
        elif wanted == PLACEHOLDER_MODEL and len(served) == 1:
            wanted = served[0]
        elif wanted not in served:
            names = ", ".join(served) or "(none)"
            raise ModelError(
                f"{self.base_url} does not serve the model {wanted!r}{did_you_mean(wanted, served)}; "
                f"it serves: {names} (pick one with --model, or /model NAME in the terminal)",
                404,
            )
        self.model = self.name = wanted
        return served

    async def complete(
        self,
        messages: list[dict],
        tools: list[dict],
        *,
        on_text: TextSink | None = None,
        on_event: EventSink | None = None,
    ) -> AssistantTurn:
        def note_retry(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome is not None else None
            if on_event is not None and isinstance(failure, _Retry) and state.next_action is not None:
                on_event({"type": "model_retry", "attempt": state.attempt_number, "max_retries": self.retry.max_retries,
                          "delay_s": state.next_action.sleep, "reason": failure.note, "error": str(failure.final)[:300]})

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.max_retries + 1),
            wait=self.retry.wait,
            retry=retry_if_exception_type(_Retry),
            before_sleep=note_retry,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            turn = await retrying(self._attempt, messages, tools, on_text, on_event)
        except _Retry as exc:
            raise exc.final from exc
        return self._finalize(turn, messages, tools)

    def _body(self, messages: list[dict], tools: list[dict]) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": self.stream}
        if tools:
            body["tools"] = tools
            if self.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = self.parallel_tool_calls
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        for name in self._dropped_fields:
            body.pop(name, None)
        return body

    async def _attempt(
        self, messages: list[dict], tools: list[dict], on_text: TextSink | None, on_event: EventSink | None
    ) -> AssistantTurn:
        headers = self._headers()
        timeout = httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=timeout) as client:
                while True:
                    body = self._body(messages, tools)
                    async with client.stream("POST", self.url, json=body, headers=headers) as response:
                        self.contacted = True
                        if response.status_code >= 400:
                            text = (await response.aread()).decode("utf-8", "replace")
                            dropped = self._drop_rejected_field(response.status_code, text, body)
                            if dropped:
                                continue
                            self._raise_for_status(response, text)
                        return await self._read(response, on_text, on_event)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            unreachable = ModelUnreachable(self.url, _reason(exc))
            if not self.contacted and _never_reached(exc):
                raise unreachable from exc
            raise _Retry(unreachable, note="endpoint unreachable") from exc
        except httpx.TimeoutException as exc:
            error = ModelError(f"{self.url} did not answer within {self.timeout_s:g}s ({_reason(exc)})")
            raise _Retry(error, note="endpoint timed out") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            dropped = ModelUnreachable(self.url, f"connection dropped: {_reason(exc)}")
            raise _Retry(dropped, note="connection dropped") from exc

    def _drop_rejected_field(self, status: int, text: str, body: dict) -> bool:
        if not 400 <= status < 500 or status == 429:
            return False
        for name in _OPTIONAL_FIELDS:
            if name in body and name in text and name not in self._dropped_fields:
                self._dropped_fields.add(name)
                return True
        return False

    def _raise_for_status(self, response: httpx.Response, text: str) -> None:
        status = response.status_code
        detail = _error_detail(text)
        message = f"{self.url} answered HTTP {status}: {detail}"
        if is_retryable_status(status):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _Retry(ModelError(message, status), retry_after, note=f"endpoint answered HTTP {status}")
        if status in (400, 413, 422) and any(hint in text.lower() for hint in _OVERFLOW_HINTS):
            raise ContextOverflow(message, status)
        if status in (401, 403):
            message += " (check the api key: the endpoint's api_key_env variable)"
        elif status == 404:
            message += f" (check the base URL and the model name {self.model!r})"
        raise ModelError(message, status)

    async def _read(self, response: httpx.Response, on_text: TextSink | None, on_event: EventSink | None) -> AssistantTurn:
        assembler = StreamAssembler()
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            # The server ignored stream=true (or we did not ask): one JSON body.
            data = _loads(await response.aread(), self.url)
            self._check_error_object(data)
            for choice in data.get("choices") or []:
                message = choice.get("message") or {}
                for i, call in enumerate(message.get("tool_calls") or []):
                    call.setdefault("index", i)
            assembler.feed(data)
            turn = assembler.finish()
            if on_text and turn.content:
                on_text(turn.content)
            return turn
        visible = True
        tokens = 0
        # httpx-sse splits the stream into events (comments such as ": keep-alive" dropped).
        async for event in EventSource(response).aiter_sse():
            payload = event.data.strip()
            if not payload:
                continue
            if payload == "[DONE]":
                break
            chunk = _loads(payload.encode(), self.url)
            self._check_error_object(chunk)
            added = assembler.feed(chunk)
            if on_event is not None and _has_delta(chunk):
                tokens += 1  # a streaming server sends about one token per chunk
                on_event({"type": "model_tokens", "tokens": tokens})
            if added and on_text:
                # Stop echoing once the model starts writing tool calls as text.
                if "<tool_call>" in "".join(assembler.content_parts):
                    visible = False
                if visible:
                    on_text(added)
        return assembler.finish()

    def _check_error_object(self, data: dict) -> None:
        error = data.get("error")
        if not error:
            return
        text = json.dumps(error) if not isinstance(error, str) else error
        if any(hint in text.lower() for hint in _OVERFLOW_HINTS):
            raise ContextOverflow(f"{self.url}: {text}")
        raise ModelError(f"{self.url} reported an error: {text}")

    def _finalize(self, turn: AssistantTurn, messages: list[dict], tools: list[dict]) -> AssistantTurn:
        if tools and not turn.tool_calls and turn.content:
            schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
            parsed = parse_text_tool_calls(turn.content, schemas)
            if parsed.calls and not parsed.problems:
                turn.tool_calls = parsed.calls
                turn.content = parsed.content or None
                turn.finish_reason = "tool_calls"
        if not turn.tokens_in:
            turn.tokens_in = count_messages(self.counter, messages, tools)
        if not turn.tokens_out:
            turn.tokens_out = self.counter.count(turn.content or "") + sum(
                self.counter.count(c.raw_arguments) + 2 for c in turn.tool_calls
            )
        return turn


def _loads(raw: bytes, url: str) -> dict:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{url} sent a body that is not JSON: {raw[:200]!r}") from exc
    if not isinstance(value, dict):
        raise ModelError(f"{url} sent JSON that is not an object: {raw[:200]!r}")
    return value


def _error_detail(text: str) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:300] or "(empty body)"
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)[:300]
    return str(error)[:300]


def _has_delta(chunk: dict) -> bool:
    return any((c.get("delta") or {}).get("content") or (c.get("delta") or {}).get("tool_calls")
               for c in chunk.get("choices") or [] if isinstance(c, dict))


def _never_reached(exc: BaseException) -> bool:
    """True for a refused connection or a name that does not resolve (anywhere in the cause chain)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (socket.gaierror, ConnectionRefusedError)):
            return True
        if any(hint in str(seen).lower() for hint in _NEVER_REACHED_HINTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
