"""`POST /v1/chat/completions`: a chat request in, a `chat.completion` or a stream of chunks out.

Streaming follows OpenAI's chunk sequence per choice: a first delta with the role, content
deltas and `tool_calls` deltas (a head fragment with index, id, type and name, then the
arguments), a last delta with `finish_reason`; then an optional usage chunk
(`stream_options.include_usage`) and `data: [DONE]`. Tool calls are parsed with the
shared ChatML parser; a reply that holds parsed calls finishes with `tool_calls`.

Knows the OpenAI chat shapes and the tool-call syntax; the engine does the generating.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import anyio
from fastapi import Request
from starlette.responses import Response

from llm.chat_template import ParsedToolCall, parse_tool_calls
from llm.serve.api_errors import APIError
from llm.serve.batch_engine import BatchEngine
from llm.serve.logprobs import chat_logprobs
from llm.serve.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FunctionCall,
    ResponseMessage,
    ToolCall,
    Usage,
)
from llm.serve.request_options import ChatPrompt, ServedModel, chat_prompt, sampling_options
from llm.serve.request_stream import RequestStream
from llm.serve.sequence import SequenceOutput
from llm.serve.sse import SSE_DONE, EngineStreamingResponse, sse_data
from llm.serve.tool_stream import ContentDelta, ToolCallStream

__all__ = ["create_chat_completion"]


async def create_chat_completion(
    req: ChatCompletionRequest, model: ServedModel, engine: BatchEngine, request: Request
) -> ChatCompletion | Response:
    if req.top_logprobs is not None and not req.logprobs:
        raise APIError(400, "top_logprobs needs logprobs=true", param="top_logprobs")
    prompt = await anyio.to_thread.run_sync(chat_prompt, req, model)  # rendering a long chat takes a while
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    logprobs = (req.top_logprobs or 0) if req.logprobs else None
    options = sampling_options(req, model, len(prompt.ids), max_tokens, logprobs, prompt.forced_prefix, prompt.guide)
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    stream = RequestStream(engine, [(prompt.ids, options)], rid)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        events = _stream(stream, req, prompt, model, rid, created, include_usage)
        return EngineStreamingResponse(events, on_close=stream.abort)
    return await _collect(stream, req, prompt, model, rid, created, request)


async def _collect(
    stream: RequestStream,
    req: ChatCompletionRequest,
    prompt: ChatPrompt,
    model: ServedModel,
    rid: str,
    created: int,
    request: Request,
) -> ChatCompletion:
    texts = [""] * req.n
    logprobs: list[list] = [[] for _ in range(req.n)]
    reasons: list[str | None] = [None] * req.n
    completion_tokens = cached_tokens = 0
    async for i, out in stream.outputs(request):
        _raise_on_error(out)
        texts[i] += out.text
        logprobs[i].extend(out.logprobs)
        if out.finished:
            reasons[i] = out.finish_reason
            completion_tokens += out.completion_tokens
            cached_tokens += out.cached_tokens if i == 0 else 0  # the prompt is counted once, as choice 0 read it
    choices = []
    for i in range(req.n):
        content: str | None = texts[i]
        calls: list[ParsedToolCall] = []
        if prompt.parse_tools:
            content, calls = parse_tool_calls(texts[i])
            calls = calls[:1] if prompt.single_call else calls
        reason = reasons[i] or "abort"
        message = ResponseMessage(
            content=content if content or not calls else None,
            tool_calls=[_tool_call(c) for c in calls] or None,
        )
        choices.append(
            ChatChoice(
                index=i,
                message=message,
                logprobs=chat_logprobs(model.tokenizer, logprobs[i]) if req.logprobs else None,
                finish_reason="tool_calls" if calls and reason == "stop" else reason,
            )
        )
    usage = Usage.of(len(prompt.ids), completion_tokens, cached_tokens)
    return ChatCompletion(id=rid, created=created, model=model.name, choices=choices, usage=usage)


async def _stream(
    stream: RequestStream,
    req: ChatCompletionRequest,
    prompt: ChatPrompt,
    model: ServedModel,
    rid: str,
    created: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(i: int, delta: Delta, finish: str | None = None, logprobs=None) -> str:
        c = ChatCompletionChunk(
            id=rid,
            created=created,
            model=model.name,
            choices=[ChunkChoice(index=i, delta=delta, logprobs=logprobs, finish_reason=finish)],
        )
        return sse_data(_chunk_json(c))

    parsers = [ToolCallStream() if prompt.parse_tools else None for _ in range(req.n)]
    completion_tokens = cached_tokens = 0
    try:
        for i in range(req.n):
            yield chunk(i, Delta(role="assistant", content=""))
        async for i, out in stream.outputs():
            if out.error:
                yield sse_data(APIError(500, f"generation failed: {out.error}", code="internal_error").body().model_dump())
                return
            lp = chat_logprobs(model.tokenizer, out.logprobs) if req.logprobs and out.logprobs else None
            pieces = _deltas(parsers[i], out, prompt.single_call)
            if lp is not None and not pieces:
                pieces = [Delta(content="")]  # logprobs of held-back text still go out with this step
            for k, delta in enumerate(pieces):
                yield chunk(i, delta, logprobs=lp if k == 0 else None)
            if out.finished:
                completion_tokens += out.completion_tokens
                cached_tokens += out.cached_tokens if i == 0 else 0
                called = parsers[i] is not None and parsers[i].calls
                finish = "tool_calls" if called and out.finish_reason == "stop" else out.finish_reason
                yield chunk(i, Delta(), finish=finish)
        if include_usage:
            usage = Usage.of(len(prompt.ids), completion_tokens, cached_tokens)
            done = ChatCompletionChunk(id=rid, created=created, model=model.name, choices=[], usage=usage)
            yield sse_data(done.model_dump())
        yield SSE_DONE
    finally:
        stream.abort()


def _deltas(parser: ToolCallStream | None, out: SequenceOutput, single_call: bool) -> list[Delta]:
    if parser is None:
        return [Delta(content=out.text)] if out.text else []
    events = parser.push(out.text) + (parser.finish() if out.finished else [])
    deltas = []
    for ev in events:
        if isinstance(ev, ContentDelta):
            deltas.append(Delta(content=ev.text))
        elif not (single_call and ev.index > 0):
            call = _tool_call(ev.call)
            head = DeltaToolCall(
                index=ev.index, id=call.id, type="function", function=DeltaFunction(name=call.function.name, arguments="")
            )
            args = DeltaToolCall(index=ev.index, function=DeltaFunction(arguments=call.function.arguments))
            deltas += [Delta(tool_calls=[head]), Delta(tool_calls=[args])]
    return deltas


def _tool_call(call: ParsedToolCall) -> ToolCall:
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    return ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", function=FunctionCall(name=call.name, arguments=arguments))


def _chunk_json(chunk: ChatCompletionChunk) -> dict:
    """OpenAI omits unset delta fields (a content delta has no "role"), but sends finish_reason: null."""
    data = chunk.model_dump()
    for choice in data["choices"]:
        choice["delta"] = _drop_none(choice["delta"])
    return data


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def _raise_on_error(out: SequenceOutput) -> None:
    if out.error:
        raise APIError(500, f"generation failed: {out.error}", code="internal_error")
