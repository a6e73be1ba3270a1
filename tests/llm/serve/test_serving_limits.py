"""Behaviour under load: batching over HTTP, disconnects, a full queue, memory over many requests."""

import os
import re
import time

import httpx
import pytest
from serve_testkit import run_concurrently, running_server

openai = pytest.importorskip("openai")

PROMPTS = ["The quick brown fox", "Paris is", "A small model", "17*23", "Germany and", "What is", "calculator", "x y z"]


def metric(url, name):
    text = httpx.get(f"{url}/metrics").text
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_for(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def completion(client, prompt, max_tokens=16):
    return client.completions.create(model="nano", prompt=prompt, max_tokens=max_tokens, temperature=0).choices[0].text


def test_concurrent_requests_are_batched_and_match_sequential_greedy(server, client):
    url, engine = server
    steps = engine.steps
    sequential = [completion(client, p) for p in PROMPTS]
    sequential_steps = engine.steps - steps
    steps = engine.steps
    results = run_concurrently(lambda p: completion(client, p), PROMPTS)
    assert results == sequential
    assert engine.steps - steps < sequential_steps / 2  # many sequences advanced per step


def stream_some_chunks(url, n_chunks):
    """Start a long streamed completion, read a few chunks, then drop the connection."""
    body = {"model": "nano", "prompt": "calculator", "max_tokens": 400, "temperature": 0, "stream": True}
    seen = []
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                seen.append(line)
                if len(seen) == n_chunks:
                    used = metric(url, "llm_kv_blocks_used")
                    break
    return seen, used


def test_client_disconnect_mid_stream_frees_its_blocks(server):
    url, _ = server
    aborted = metric(url, 'llm_sequences_finished_total{reason="abort"}')
    seen, used_while_streaming = stream_some_chunks(url, 5)
    assert '"finish_reason":null' in seen[-1] and used_while_streaming > 0
    wait_for(lambda: metric(url, "llm_kv_blocks_used") == 0)
    assert metric(url, 'llm_sequences_finished_total{reason="abort"}') == aborted + 1
    assert metric(url, "llm_requests_running") == 0


def test_full_queue_answers_429_with_retry_after(nano):
    with running_server(nano, max_batch=1, max_queue=4, kv_blocks=64, block_size=8) as (url, engine):
        # Five long choices: one runs, four wait, so the queue is full until they finish.
        body = {"model": "nano", "prompt": "calculator", "max_tokens": 400, "n": 5, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
            lines = r.iter_lines()  # NOTE: held in a variable: a dropped line iterator closes the connection
            while not next(lines).startswith("data: {"):
                pass
            busy = httpx.post(f"{url}/v1/completions", json={"model": "nano", "prompt": "hi", "max_tokens": 2})
            assert busy.status_code == 429 and int(busy.headers["Retry-After"]) >= 1
            assert busy.json()["error"]["type"] == "rate_limit_error"
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            with pytest.raises(openai.RateLimitError):
                sdk.completions.create(model="nano", prompt="hi", max_tokens=2)
        wait_for(lambda: engine.cache.num_used_blocks == 0 and metric(url, "llm_requests_waiting") == 0)
        small = {"model": "nano", "prompt": "hi", "max_tokens": 2}
        assert httpx.post(f"{url}/v1/completions", json=small).status_code == 200
        assert metric(url, "llm_requests_rejected_total") == 2
        assert metric(url, 'llm_sequences_finished_total{reason="abort"}') == 5


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_memory_stays_flat_over_many_requests(server, client):
    url, engine = server
    for i in range(40):  # warm-up: allocator pools, lazily built kernels
        completion(client, PROMPTS[i % len(PROMPTS)], max_tokens=8)
    before = rss_bytes()
    for i in range(200):
        completion(client, PROMPTS[i % len(PROMPTS)], max_tokens=8)
    growth = (rss_bytes() - before) / before
    assert growth < 0.05, f"RSS grew {growth:.1%} over 200 requests"
    assert engine.cache.num_used_blocks == 0


def test_client_that_gives_up_on_a_non_streamed_request_frees_its_blocks(server):
    url, _ = server
    aborted = metric(url, 'llm_sequences_finished_total{reason="abort"}')
    body = {"model": "nano", "prompt": "calculator", "max_tokens": 480, "n": 8, "ignore_eos": True, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/completions", json=body, timeout=httpx.Timeout(5.0, read=0.3))
    wait_for(lambda: metric(url, 'llm_sequences_finished_total{reason="abort"}') == aborted + 8)
    assert metric(url, "llm_kv_blocks_used") == 0
