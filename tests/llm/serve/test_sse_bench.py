"""llm bench serve's plumbing: percentiles and reading a streamed completion."""

import asyncio
import json

import httpx
from httpx_sse import aconnect_sse

from llm.serve.bench import percentile, sse_chunks


def test_percentile_is_the_nearest_observed_value():
    values = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert percentile(values, 50) == 0.3
    assert percentile(values, 0) == 0.1 and percentile(values, 100) == 0.5
    assert percentile(values, 99) == 0.5
    assert percentile([], 50) is None


def test_sse_chunks_yields_each_json_event_until_done():
    chunks = [{"choices": [{"delta": {"content": "Hi"}}]}, {"usage": {"completion_tokens": 1}}]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + ": keep-alive\n\ndata: [DONE]\n\n"

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    async def read() -> list[dict]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
            async with aconnect_sse(client, "POST", "http://test/v1/chat/completions", json={}) as source:
                return [c async for c in sse_chunks(source)]

    assert asyncio.run(read()) == chunks
