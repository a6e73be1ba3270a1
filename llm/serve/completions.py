"""`POST /v1/completions` (OpenAI's legacy text completions): prompts in, continuations out.

A request may hold several prompts; choice `p * n + j` is the j-th sample of prompt p, as
in OpenAI's API. Streaming sends `text_completion` chunks with text deltas, then a chunk
with the finish reason per choice, an optional usage chunk and `data: [DONE]`.

Knows the completion shapes; the engine does the generating.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import anyio
from fastapi import Request
from starlette.responses import Response

from llm.serve.api_errors import APIError
from llm.serve.batch_engine import BatchEngine
from llm.serve.logprobs import completion_logprobs
from llm.serve.protocol import Completion, CompletionChoice, CompletionRequest, Usage
from llm.serve.request_options import ServedModel, completion_prompts, sampling_options
from llm.serve.request_stream import RequestStream
from llm.serve.sse import SSE_DONE, EngineStreamingResponse, sse_data

__all__ = ["create_completion"]


async def create_completion(
    req: CompletionRequest, model: ServedModel, engine: BatchEngine, request: Request
) -> Completion | Response:
    prompts, echoes = await anyio.to_thread.run_sync(_prompts_and_echoes, req, model)  # tokenizing takes a while
    jobs = [(p, sampling_options(req, model, len(p), req.max_tokens, req.logprobs)) for p in prompts]
    rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    stream = RequestStream(engine, jobs, rid)
    prompt_tokens = sum(len(p) for p in prompts)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        events = _stream(stream, req, model, rid, created, echoes, prompt_tokens, include_usage)
        return EngineStreamingResponse(events, on_close=stream.abort)

    texts = list(echoes)
    entries: list[list] = [[] for _ in echoes]
    reasons: list[str] = ["abort"] * len(echoes)
    completion_tokens = cached_tokens = 0
    async for i, out in stream.outputs(request):
        if out.error:
            raise APIError(500, f"generation failed: {out.error}", code="internal_error")
        texts[i] += out.text
        entries[i].extend(out.logprobs)
        if out.finished:
            reasons[i] = out.finish_reason
            completion_tokens += out.completion_tokens
            cached_tokens += out.cached_tokens if i % req.n == 0 else 0  # each prompt counted once
    choices = [
        CompletionChoice(
            index=i,
            text=texts[i],
            logprobs=completion_logprobs(model.tokenizer, entries[i], len(echoes[i])) if req.logprobs is not None else None,
            finish_reason=reasons[i],
        )
        for i in range(len(texts))
    ]
    usage = Usage.of(prompt_tokens, completion_tokens, cached_tokens)
    return Completion(id=rid, created=created, model=model.name, choices=choices, usage=usage)


def _prompts_and_echoes(req: CompletionRequest, model: ServedModel) -> tuple[list[list[int]], list[str]]:
    prompts = completion_prompts(req, model)
    return prompts, [model.tokenizer.decode(p) if req.echo else "" for p in prompts for _ in range(req.n)]


async def _stream(
    stream: RequestStream,
    req: CompletionRequest,
    model: ServedModel,
    rid: str,
    created: int,
    echoes: list[str],
    prompt_tokens: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(choice: CompletionChoice) -> str:
        return sse_data(Completion(id=rid, created=created, model=model.name, choices=[choice]).model_dump())

    offsets = [len(e) for e in echoes]
    completion_tokens = cached_tokens = 0
    try:
        for i, echo in enumerate(echoes):
            if echo:
                yield chunk(CompletionChoice(index=i, text=echo))
        async for i, out in stream.outputs():
            if out.error:
                yield sse_data(APIError(500, f"generation failed: {out.error}", code="internal_error").body().model_dump())
                return
            lp = None
            if req.logprobs is not None:
                lp = completion_logprobs(model.tokenizer, out.logprobs, offsets[i])
            offsets[i] += len(out.text)
            if out.text or lp is not None:
                yield chunk(CompletionChoice(index=i, text=out.text, logprobs=lp))
            if out.finished:
                completion_tokens += out.completion_tokens
                cached_tokens += out.cached_tokens if i % req.n == 0 else 0
                yield chunk(CompletionChoice(index=i, text="", finish_reason=out.finish_reason))
        if include_usage:
            usage = Usage.of(prompt_tokens, completion_tokens, cached_tokens)
            yield sse_data(Completion(id=rid, created=created, model=model.name, choices=[], usage=usage).model_dump())
        yield SSE_DONE
    finally:
        stream.abort()
