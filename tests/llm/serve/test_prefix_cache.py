"""Automatic prefix caching in the engine and the server: same tokens, fewer computed, nothing leaked."""

import json
import queue
import random

import httpx
import pytest
import torch
from serve_testkit import running_server
from test_batch_engine import PROMPTS, reference

from llm.infer.loading import stop_ids
from llm.infer.inference_model import InferenceModel
from llm.infer.sampling import SamplingParams
from llm.serve.batch_engine import BatchEngine
from llm.serve.sequence import SamplingOptions

SYSTEM = "You are a careful assistant. Answer in one short sentence and use the calculator for sums. " * 2
GREEDY = SamplingOptions(SamplingParams(max_tokens=16, temperature=0.0))


@pytest.fixture(scope="module")
def net(nano):
    return InferenceModel.from_gpt(nano.model)


@pytest.fixture
def engine_for(nano, net):
    engines = []

    def make(**kw):
        args = dict(end_ids=set(stop_ids(nano)), kv_blocks=64, block_size=8, max_batch=8)
        args.update(kw)
        e = BatchEngine(net, nano.tokenizer, **args)
        e.start()
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.shutdown()


def run(engine, prompts, options=GREEDY):
    """Submit all prompts at once; returns [(token ids, finish reason, cached prompt tokens)] in prompt order."""
    box = queue.Queue()
    order = {}
    for i, p in enumerate(prompts):
        [sid] = engine.submit(p, [options], box.put)
        order[sid] = i
    tokens, done = [[] for _ in prompts], {}
    while len(done) < len(prompts):
        out = box.get(timeout=60)
        tokens[order[out.seq_id]] += out.token_ids
        if out.finished:
            done[order[out.seq_id]] = (out.finish_reason, out.cached_tokens)
    return [(tokens[i], *done[i]) for i in range(len(prompts))]


def assert_pool_settled(cache):
    """No sequence holds a block; every block is either free or cached-and-idle, exactly once."""
    pool = cache.pool
    assert not cache.tables and all(r == 0 for r in pool.refs)
    free, idle = list(pool._free), list(pool._idle)
    assert sorted(free + idle) == list(range(cache.num_blocks))
    assert pool.num_cached == len(idle) and cache.num_used_blocks == 0


def test_greedy_outputs_are_identical_with_and_without_the_cache_across_batches_and_evictions(nano, engine_for):
    system = nano.tokenizer.encode(SYSTEM)
    prompts = [system + nano.tokenizer.encode(p) for p in PROMPTS]
    batches = [prompts[:3], prompts[3:6], prompts[6:] + prompts[:2], [prompts[0]] * 3, prompts[2:5]]
    on = engine_for(kv_blocks=24, prefix_caching=True)  # 192 slots: earlier batches' blocks get evicted
    off = engine_for(kv_blocks=24, prefix_caching=False)
    for batch in batches:
        with_cache, without = run(on, batch), run(off, batch)
        assert [r[:2] for r in with_cache] == [r[:2] for r in without]
        assert all(cached == 0 for *_, cached in without)
    for p in prompts[:3]:  # and both are the naive greedy continuation
        assert run(on, [p])[0][:2] == reference(nano, p, GREEDY.max_tokens)
    hit_tokens = on.metrics.prefix_cache_hits._value.get()
    assert hit_tokens >= len(system) // 8 * 8 * 10  # most admissions after the first found the system prompt
    assert on.metrics.kv_blocks_evicted._value.get() > 0 and on.cache.pool.evictions > 0
    assert off.cache.num_cached_blocks == 0 and off.metrics.prefix_cache_hits._value.get() == 0


def test_a_request_repeated_reuses_all_but_its_last_block_and_a_longer_one_extends_it(nano, engine_for):
    engine = engine_for()
    p = nano.tokenizer.encode(SYSTEM + "What is 17*23?")
    first, again = run(engine, [p]), run(engine, [p])
    assert first[0][2] == 0 and again[0][2] == (len(p) - 1) // 8 * 8
    assert again[0][:2] == first[0][:2]
    # The next agent step: the whole previous exchange plus new text.
    longer = p + first[0][0] + nano.tokenizer.encode(" and then?")
    [(tokens, _, cached)] = run(engine, [longer])
    assert cached >= len(p) // 8 * 8  # the reply's blocks were cached too
    assert (tokens, _) == reference(nano, longer, GREEDY.max_tokens)


def test_ref_counts_return_to_zero_after_a_storm_of_cancelled_requests(nano, engine_for):
    engine = engine_for(kv_blocks=48, block_size=4, max_batch=6)
    rng = random.Random(0)
    system = nano.tokenizer.encode(SYSTEM)
    box = queue.Queue()
    live, outputs_seen = set(), {}
    for i in range(40):
        prompt = system[: rng.randint(3, len(system))] + nano.tokenizer.encode(PROMPTS[i % len(PROMPTS)])
        opts = SamplingOptions(SamplingParams(max_tokens=rng.randint(1, 30), temperature=0.0, ignore_eos=True))
        [sid] = engine.submit(prompt, [opts], box.put)
        live.add(sid)
        outputs_seen[sid] = rng.choice([0, 0, 1, 3, 8, 100])  # abort before, at or after its first tokens
        if outputs_seen[sid] == 0:
            engine.abort([sid])
    reasons = []
    while live:
        out = box.get(timeout=60)
        if out.finished:
            live.discard(out.seq_id)
            reasons.append(out.finish_reason)
            continue
        outputs_seen[out.seq_id] -= 1
        if outputs_seen[out.seq_id] == 0:
            engine.abort([out.seq_id])
    assert reasons.count("abort") >= 15 and reasons.count("length") >= 5
    assert_pool_settled(engine.cache)
    assert engine.cache.num_cached_blocks > 0
    p = system + nano.tokenizer.encode(PROMPTS[1])
    [(tokens, reason, cached)] = run(engine, [p])
    assert cached > 0 and (tokens, reason) == reference(nano, p, GREEDY.max_tokens)  # the cache holds no garbage


def test_a_forced_colliding_hash_never_shares_blocks_between_different_prefixes(nano, engine_for):
    engine = engine_for(block_hash=lambda parent, tokens: 0)
    enc = nano.tokenizer.encode
    common = enc(SYSTEM)[:16]  # two full blocks
    a = enc("Paris is the capital of France and") + common
    b = enc("Germany and France are neighbours,") + common  # the same later blocks under another prefix
    c = a[:16] + enc(" so the answer is")
    got = [run(engine, [p])[0] for p in (a, b, c, b)]
    assert [cached for *_, cached in got] == [0, 0, 16, (len(b) - 1) // 8 * 8]
    for p, (tokens, reason, _) in zip((a, b, c, b), got):
        assert (tokens, reason) == reference(nano, p, GREEDY.max_tokens)
    assert_pool_settled(engine.cache)


def _chat(url, messages, stream=False):
    body = {"model": "nano", "messages": messages, "max_tokens": 8, "temperature": 0, "stream": stream}
    if not stream:
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()
    body["stream_options"] = {"include_usage": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: {")]
    return json.loads(lines[-1][6:])  # the usage chunk


def test_usage_reports_cached_prompt_tokens_and_metrics_show_the_cache(server):
    url, _ = server
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is 17*23?"}]
    first = _chat(url, messages)
    second = _chat(url, messages)
    streamed = _chat(url, messages, stream=True)
    n = first["usage"]["prompt_tokens"]
    assert first["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == (n - 1) // 8 * 8
    assert streamed["usage"]["prompt_tokens_details"]["cached_tokens"] == (n - 1) // 8 * 8
    assert second["choices"][0]["message"] == first["choices"][0]["message"]
    text = httpx.get(f"{url}/metrics").text
    metrics = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and line[0] != "#"}
    assert metrics["llm_prefix_cache_hit_tokens_total"] >= 2 * ((n - 1) // 8 * 8)
    assert 0 < metrics["llm_prefix_cache_hit_rate"] < 1
    assert metrics["llm_kv_blocks_cached"] >= n // 8 and "llm_kv_blocks_evicted_total" in metrics
    body = {"model": "nano", "prompt": [SYSTEM, SYSTEM + " Then"], "max_tokens": 2, "n": 2, "temperature": 0}
    completions = [httpx.post(f"{url}/v1/completions", json=body, timeout=60).json() for _ in range(2)]
    cached = [c["usage"]["prompt_tokens_details"]["cached_tokens"] for c in completions]
    prompt_tokens = completions[1]["usage"]["prompt_tokens"]
    assert cached[1] > cached[0] and cached[1] >= prompt_tokens - 2 * 8  # each prompt counted once, not per choice


def test_no_prefix_cache_switches_it_off(nano):
    with running_server(nano, max_batch=4, kv_blocks=64, block_size=8, prefix_cache=False) as (url, engine):
        messages = [{"role": "user", "content": SYSTEM}]
        assert [_chat(url, messages)["usage"]["prompt_tokens_details"]["cached_tokens"] for _ in range(2)] == [0, 0]
        assert engine.cache.num_cached_blocks == 0
