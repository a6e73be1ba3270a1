"""`llm serve --prefill-dtype bfloat16`: prompt chunks through bf16 GEMMs, decoding in float32, the same answers."""

import httpx
from serve_testkit import TOOLS, running_server, tool_conversations


def answers(url):
    """The fixture's memorised tool call, and its answer after the tool result (greedy, raw text)."""
    first, second = tool_conversations()
    out = []
    for messages in (first[:-1], second[:-1]):
        body = {"model": "nano", "messages": messages, "tools": TOOLS, "max_tokens": 40, "temperature": 0}
        message = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]
        calls = [c["function"] for c in message["tool_calls"] or []]  # without the random call ids
        out.append((message["content"], calls))
    return out


def test_bf16_prefill_gives_the_fixture_s_answers_and_makes_its_bf16_copies_at_start(nano):
    with running_server(nano, max_batch=4, kv_blocks=64, block_size=8) as (url, _):
        exact = answers(url)
    with running_server(nano, max_batch=4, kv_blocks=64, block_size=8, prefill_dtype="bfloat16") as (url, engine):
        layer = engine.runner.model.layers[0]
        assert layer.wqkv._bf16 is not None and layer.w_down._bf16 is not None  # made by the warm-up pass
        assert answers(url) == exact
    assert exact[0][1][0]["name"] == "calculator" and "391" in exact[1][0]
