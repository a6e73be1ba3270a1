"""`OpenAIChatModel`: an async client for any OpenAI-compatible `/v1/chat/completions`.

Works with `llm serve`, vLLM, llama.cpp's server, Ollama and OpenAI. Streams by default
(SSE) and assembles tool-call deltas with `StreamAssembler`; falls back to parsing
tool-call text in `content` when a server returns calls as text. Retries connection
errors, timeouts, 429 and 5xx with exponential backoff (honouring `Retry-After`), never
other 4xx. A context-length error becomes `ContextOverflow` so the agent compacts its
memory instead of resending the same prompt.

The transport is injectable (`httpx.MockTransport`, `httpx.ASGITransport`) so tests need
no network. This module knows nothing about the agent loop or tools beyond their schemas.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import anyio
import httpx

from iclaw.errors import ContextOverflow, ModelError, ModelUnreachable
from iclaw.providers.retry import RetryPolicy, is_retryable_status, parse_retry_after
from iclaw.providers.stream import StreamAssembler
from iclaw.providers.text_calls import parse_text_tool_calls
from iclaw.providers.turn import AssistantTurn, TextSink
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

    def __init__(self, final: Exception, retry_after: float | None = None) -> None:
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after


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

    async def complete(
        self, messages: list[dict], tools: list[dict], *, on_text: TextSink | None = None
    ) -> AssistantTurn:
        attempt = 0
        while True:
            try:
                turn = await self._attempt(messages, tools, on_text)
                break
            except _Retry as exc:
                attempt += 1
                if attempt > self.retry.max_retries:
                    raise exc.final from exc
                await self.sleep(self.retry.delay(attempt, exc.retry_after))
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

    async def _attempt(self, messages: list[dict], tools: list[dict], on_text: TextSink | None) -> AssistantTurn:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=timeout) as client:
                while True:
                    body = self._body(messages, tools)
                    async with client.stream("POST", self.url, json=body, headers=headers) as response:
                        if response.status_code >= 400:
                            text = (await response.aread()).decode("utf-8", "replace")
                            dropped = self._drop_rejected_field(response.status_code, text, body)
                            if dropped:
                                continue
                            self._raise_for_status(response, text)
                        return await self._read(response, on_text)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Retry(ModelUnreachable(self.url, _reason(exc))) from exc
        except httpx.TimeoutException as exc:
            raise _Retry(ModelError(f"{self.url} did not answer within {self.timeout_s:g}s ({_reason(exc)})")) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise _Retry(ModelUnreachable(self.url, f"connection dropped: {_reason(exc)}")) from exc

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
            raise _Retry(ModelError(message, status), parse_retry_after(response.headers.get("retry-after")))
        if status in (400, 413, 422) and any(hint in text.lower() for hint in _OVERFLOW_HINTS):
            raise ContextOverflow(message, status)
        if status in (401, 403):
            message += " (check the api key: the endpoint's api_key_env variable)"
        elif status == 404:
            message += f" (check the base URL and the model name {self.model!r})"
        raise ModelError(message, status)

    async def _read(self, response: httpx.Response, on_text: TextSink | None) -> AssistantTurn:
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
        async for line in response.aiter_lines():
            line = line.strip()
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, "event:" lines
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            chunk = _loads(payload.encode(), self.url)
            self._check_error_object(chunk)
            added = assembler.feed(chunk)
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


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
