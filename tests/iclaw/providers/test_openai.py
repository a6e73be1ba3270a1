"""OpenAIChatModel against mock transports that speak real SSE chunk shapes."""

from __future__ import annotations

import json

import httpx
import pytest

from iclaw.errors import ContextOverflow, ModelError, ModelUnreachable, ProfileError
from iclaw.providers.openai import OpenAIChatModel, normalize_base_url
from iclaw.providers.retry import RetryPolicy, parse_retry_after

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "w",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "calculator", "description": "c",
                                      "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}},
]
MESSAGES = [{"role": "user", "content": "hi"}]


def sse(*chunks: dict, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    if done:
        lines.append("data: [DONE]\n\n")
    return ": keep-alive\n\n".join(lines).encode()


def chunk(delta=None, finish=None, usage=None, choices=True):
    out = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    if usage:
        out["usage"] = usage
    return out


def sse_response(body: bytes, status: int = 200, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "text/event-stream", **(headers or {})})


class Recorder:
    def __init__(self, responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response

    def body(self, i=-1) -> dict:
        return json.loads(self.requests[i].content)


def make_model(recorder, delays=None, **kwargs) -> OpenAIChatModel:
    async def sleep(seconds):
        if delays is not None:
            delays.append(seconds)

    return OpenAIChatModel("http://server.test/v1", "m", transport=httpx.MockTransport(recorder), sleep=sleep, **kwargs)


@pytest.mark.anyio
async def test_streams_content_with_usage_and_sends_openai_request():
    rec = Recorder([sse_response(sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Paris is "}),
        chunk({"content": "the capital."}),
        chunk(finish="stop"),
        chunk(usage={"prompt_tokens": 9, "completion_tokens": 4}, choices=False),
    ))])
    seen: list[str] = []
    turn = await make_model(rec, api_key="sk-test").complete(MESSAGES, TOOLS, on_text=seen.append)
    assert turn.content == "Paris is the capital."
    assert seen == ["Paris is ", "the capital."]
    assert (turn.tokens_in, turn.tokens_out, turn.finish_reason) == (9, 4, "stop")
    body = rec.body()
    assert body["model"] == "m" and body["stream"] is True and body["tools"] == TOOLS
    assert body["stream_options"] == {"include_usage": True}
    assert rec.requests[0].url == "http://server.test/v1/chat/completions"
    assert rec.requests[0].headers["authorization"] == "Bearer sk-test"


@pytest.mark.anyio
async def test_parallel_tool_call_deltas_are_assembled():
    rec = Recorder([sse_response(sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "ris\"}"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "calculator", "arguments": "{\"expression\": \"2*21\"}"}}]}),
        chunk(finish="tool_calls"),
    ))])
    turn = await make_model(rec).complete(MESSAGES, TOOLS)
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "calculator", {"expression": "2*21"}),
    ]
    assert turn.finish_reason == "tool_calls"
    assert turn.tokens_in > 0 and turn.tokens_out > 0  # estimated when the server sends no usage


@pytest.mark.anyio
async def test_local_server_quirks_reused_index_and_missing_ids():
    rec = Recorder([sse_response(sse(
        chunk({"tool_calls": [{"index": 0, "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "get_weather", "arguments": "{\"city\": \"Lima\"}"}}]}),
        chunk(finish="tool_calls"),
    ))])
    turn = await make_model(rec).complete(MESSAGES, TOOLS)
    assert [c.arguments["city"] for c in turn.tool_calls] == ["Oslo", "Lima"]
    assert len({c.id for c in turn.tool_calls}) == 2


@pytest.mark.anyio
async def test_tool_call_json_in_content_becomes_tool_calls_and_is_not_echoed():
    text = '<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>'
    rec = Recorder([sse_response(sse(chunk({"content": text[:20]}), chunk({"content": text[20:]}), chunk(finish="stop")))])
    seen: list[str] = []
    turn = await make_model(rec).complete(MESSAGES, TOOLS, on_text=seen.append)
    assert turn.tool_calls[0].name == "calculator" and turn.tool_calls[0].arguments == {"expression": "17*23"}
    assert turn.content is None and turn.finish_reason == "tool_calls"
    assert "<tool_call>" not in "".join(seen)


@pytest.mark.anyio
async def test_retries_5xx_and_429_honouring_retry_after_then_succeeds():
    rec = Recorder([
        httpx.Response(503, json={"error": {"message": "overloaded"}}),
        httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "2"}),
        sse_response(sse(chunk({"content": "ok"}), chunk(finish="stop"))),
    ])
    delays: list[float] = []
    turn = await make_model(rec, delays, retry=RetryPolicy(max_retries=3, base_delay_s=0.5)).complete(MESSAGES, [])
    assert turn.content == "ok"
    assert len(rec.requests) == 3
    assert delays == [0.5, 2.0]  # exponential first, then the server's Retry-After


@pytest.mark.anyio
async def test_never_retries_other_4xx():
    rec = Recorder([httpx.Response(401, json={"error": {"message": "bad key"}})])
    with pytest.raises(ModelError, match="HTTP 401.*bad key"):
        await make_model(rec).complete(MESSAGES, [])
    assert len(rec.requests) == 1


@pytest.mark.anyio
async def test_context_length_error_is_context_overflow_without_resend():
    rec = Recorder([httpx.Response(400, json={"error": {"message": "This model's maximum context length is 8192 tokens", "code": "context_length_exceeded"}})])
    with pytest.raises(ContextOverflow):
        await make_model(rec).complete(MESSAGES, [])
    assert len(rec.requests) == 1


@pytest.mark.anyio
async def test_connect_errors_after_first_contact_retry_with_backoff_and_notes_then_name_the_url():
    ok = sse_response(sse(chunk({"content": "hi"}), chunk(finish="stop")))
    rec = Recorder([ok] + [httpx.ConnectError("connection refused") for _ in range(4)])
    delays: list[float] = []
    events: list[dict] = []
    model = make_model(rec, delays, retry=RetryPolicy(max_retries=3, base_delay_s=0.25))
    await model.complete(MESSAGES, [])
    with pytest.raises(ModelUnreachable) as info:
        await model.complete(MESSAGES, [], on_event=events.append)
    assert "http://server.test/v1/chat/completions" in str(info.value)
    assert delays == [0.25, 0.5, 1.0]
    assert len(rec.requests) == 5
    retries = [e for e in events if e["type"] == "model_retry"]
    assert [(e["attempt"], e["max_retries"], e["reason"]) for e in retries] == [
        (1, 3, "endpoint unreachable"), (2, 3, "endpoint unreachable"), (3, 3, "endpoint unreachable")]


@pytest.mark.anyio
@pytest.mark.parametrize("error", [
    httpx.ConnectError("[Errno 111] Connection refused"),
    httpx.ConnectError("[Errno -2] Name or service not known"),
    httpx.ConnectError("[Errno -3] Temporary failure in name resolution"),
])
async def test_refused_or_unresolvable_on_first_contact_fails_at_once(error):
    rec = Recorder([error])
    delays: list[float] = []
    with pytest.raises(ModelUnreachable):
        await make_model(rec, delays, retry=RetryPolicy(max_retries=4)).complete(MESSAGES, [])
    assert delays == [] and len(rec.requests) == 1


@pytest.mark.anyio
async def test_a_connect_timeout_on_first_contact_is_still_retried():
    rec = Recorder([httpx.ConnectTimeout("timed out"), sse_response(sse(chunk({"content": "ok"}), chunk(finish="stop")))])
    delays: list[float] = []
    turn = await make_model(rec, delays).complete(MESSAGES, [])
    assert turn.content == "ok" and len(delays) == 1


@pytest.mark.anyio
async def test_streamed_chunks_are_counted_as_tokens():
    rec = Recorder([sse_response(sse(chunk({"content": "a"}), chunk({"content": "b"}), chunk({"content": "c"}), chunk(finish="stop")))])
    events: list[dict] = []
    await make_model(rec).complete(MESSAGES, [], on_event=events.append)
    assert [e["tokens"] for e in events if e["type"] == "model_tokens"] == [1, 2, 3]


def models_server(served):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            if served is None:
                return httpx.Response(404, json={"detail": "Not Found"})
            return httpx.Response(200, json={"object": "list", "data": [{"id": n, "object": "model"} for n in served]})
        return sse_response(sse(chunk({"content": "hello"}), chunk(finish="stop")))
    return handler


@pytest.mark.anyio
async def test_check_served_accepts_served_names_and_lists_them_for_others():
    model = OpenAIChatModel("http://server.test/v1", "tiny", transport=httpx.MockTransport(models_server(["tiny", "tiny-instruct"])))
    assert await model.check_served() == ["tiny", "tiny-instruct"]
    await model.check_served("tiny-instruct")
    assert model.model == model.name == "tiny-instruct"
    with pytest.raises(ModelError) as info:
        await model.check_served("tiny-instrcut")
    message = str(info.value)
    assert "does not serve the model 'tiny-instrcut'" in message
    assert "did you mean tiny-instruct?" in message and "it serves: tiny, tiny-instruct" in message
    assert model.model == "tiny-instruct"  # a refused name leaves the model as it was


@pytest.mark.anyio
async def test_check_served_placeholder_takes_the_only_model_and_unlisted_servers_pass():
    model = OpenAIChatModel("http://server.test/v1", "default", transport=httpx.MockTransport(models_server(["smollm2"])))
    await model.check_served()
    assert model.model == "smollm2"
    quiet = OpenAIChatModel("http://server.test/v1", "anything", transport=httpx.MockTransport(models_server(None)))
    assert await quiet.check_served() == [] and quiet.model == "anything"


@pytest.mark.anyio
async def test_list_models_against_a_down_server_fails_at_once():
    rec = Recorder([httpx.ConnectError("connection refused")])
    model = make_model(rec, retry=RetryPolicy(max_retries=4))
    with pytest.raises(ModelUnreachable) as info:
        await model.list_models()
    assert "http://server.test/v1/models" in str(info.value) and len(rec.requests) == 1


@pytest.mark.anyio
async def test_rejected_optional_field_is_dropped_once_not_counted_as_retry():
    rec = Recorder([
        httpx.Response(400, json={"error": {"message": "Unrecognized request argument supplied: stream_options"}}),
        sse_response(sse(chunk({"content": "fine"}), chunk(finish="stop"))),
    ])
    delays: list[float] = []
    turn = await make_model(rec, delays).complete(MESSAGES, [])
    assert turn.content == "fine" and delays == []
    assert "stream_options" in rec.body(0) and "stream_options" not in rec.body(1)


@pytest.mark.anyio
async def test_server_that_ignores_stream_returns_one_json_body():
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Lima\"}"}},
    ]}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    rec = Recorder([httpx.Response(200, json=body)])
    turn = await make_model(rec).complete(MESSAGES, TOOLS)
    assert [c.arguments["city"] for c in turn.tool_calls] == ["Oslo", "Lima"]
    assert turn.tokens_out == 7


@pytest.mark.anyio
async def test_error_object_inside_the_stream_is_a_model_error():
    rec = Recorder([sse_response(sse({"error": {"message": "model crashed"}}, done=False))])
    with pytest.raises(ModelError, match="model crashed"):
        await make_model(rec).complete(MESSAGES, [])


@pytest.mark.anyio
async def test_against_an_in_process_asgi_server():
    """A tiny ASGI app streams SSE through httpx's ASGI transport, as a real server would."""

    async def app(scope, receive, send):
        assert scope["path"] == "/v1/chat/completions"
        request = json.loads((await receive())["body"])
        assert request["messages"][-1]["content"] == "hi"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for part in (
            chunk({"role": "assistant"}),
            chunk({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"name": "calculator", "arguments": "{\"expression\":"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": " \"6*7\"}"}}]}),
            chunk(finish="tool_calls"),
        ):
            await send({"type": "http.response.body", "body": f"data: {json.dumps(part)}\n\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    model = OpenAIChatModel("http://asgi.test", "m", transport=httpx.ASGITransport(app=app))
    turn = await model.complete(MESSAGES, TOOLS)
    assert turn.tool_calls[0].arguments == {"expression": "6*7"}
    assert model.url == "http://asgi.test/v1/chat/completions"


def test_base_url_normalisation_and_validation():
    assert normalize_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_base_url("http://localhost:11434/v1/") == "http://localhost:11434/v1"
    with pytest.raises(ProfileError, match="http"):
        normalize_base_url("localhost:8000")


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert RetryPolicy(base_delay_s=1, max_delay_s=5).delay(10) == 5
