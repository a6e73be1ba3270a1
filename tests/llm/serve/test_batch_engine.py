"""The engine thread: batched greedy decoding equals one-at-a-time decoding, token for token."""

import queue

import pytest
import torch

from llm.infer.loading import stop_ids
from llm.infer.inference_model import InferenceModel
from llm.serve.batch_engine import BatchEngine, QueueFull
from llm.infer.sampling import SamplingParams
from llm.serve.sequence import SamplingOptions

PROMPTS = [
    "The quick brown fox",
    "Paris is the capital",
    "A small model learns to copy what it has seen",
    "17*23",
    "calculator",
    "What is the expression?",
    "Germany and France",
    "x",
]


def opts(**params):
    return SamplingOptions(SamplingParams(**params))


def run(engine, prompts, options):
    """Submit all prompts at once; return {prompt index: (token ids, finish reason)}."""
    box = queue.Queue()
    ids = {}
    for i, p in enumerate(prompts):
        for sid in engine.submit(p, [options], box.put):
            ids[sid] = i
    done, tokens = {}, {i: [] for i in range(len(prompts))}
    while len(done) < len(prompts):
        out = box.get(timeout=60)
        tokens[ids[out.seq_id]] += out.token_ids
        if out.finished:
            done[ids[out.seq_id]] = out.finish_reason
    return {i: (tokens[i], done[i]) for i in done}


@pytest.fixture
def engine_for(nano):
    engines = []

    def make(net=None, **kw):
        args = dict(end_ids=set(stop_ids(nano)), kv_blocks=64, block_size=8, max_batch=8)
        args.update(kw)
        e = BatchEngine(net or nano.model, nano.tokenizer, **args)
        e.start()
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.shutdown()


@torch.inference_mode()
def reference(nano, prompt, max_tokens):
    """One request alone, the naive way: a full forward pass over the whole sequence per token, no cache.

    Returns what the engine must report: every generated id, the end-of-reply id included
    (it counts as a completion token, though it is not text), and the finish reason.
    """
    ends, ids = set(stop_ids(nano)), list(prompt)
    for _ in range(max_tokens):
        logits, _ = nano.model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
        if ids[-1] in ends:
            return ids[len(prompt) :], "stop"
    return ids[len(prompt) :], "length"


@pytest.mark.parametrize("kind", ["gpt", "inference_model"])
def test_batched_greedy_equals_sequential_greedy(nano, engine_for, kind):
    """Both forwards the server can run: the reference GPT and the fused/native InferenceModel."""
    net = nano.model if kind == "gpt" else InferenceModel.from_gpt(nano.model)
    prompts = [nano.tokenizer.encode(p) for p in PROMPTS]
    got = run(engine_for(net), prompts, opts(max_tokens=24, temperature=0.0))
    wants = [reference(nano, p, 24) for p in prompts]
    for i, want in enumerate(wants):
        assert got[i] == want, PROMPTS[i]  # every token, the end id included, and the finish reason
    assert len({tuple(tokens) for tokens, _ in wants}) > 4  # the prompts really lead to different continuations
    assert {reason for _, reason in wants} == {"stop", "length"}  # both ways of ending are compared


def test_preemption_under_a_tiny_kv_pool_keeps_outputs_identical(nano, engine_for):
    prompts = [nano.tokenizer.encode(p) for p in PROMPTS]
    engine = engine_for(kv_blocks=12, block_size=4)  # 48 slots for 8 sequences of up to ~40 tokens
    got = run(engine, prompts, opts(max_tokens=24, temperature=0.0))
    assert engine.metrics.preemptions._value.get() > 0
    for i, p in enumerate(prompts):
        assert got[i] == reference(nano, p, 24), PROMPTS[i]
    assert engine.cache.num_used_blocks == 0


def test_seeded_sampling_is_reproducible_and_independent_of_batch_mates(nano, engine_for):
    engine = engine_for()
    p = nano.tokenizer.encode(PROMPTS[0])
    seeded = opts(max_tokens=16, temperature=1.0, seed=123)
    alone = run(engine, [p], seeded)[0]
    together = run(engine, [p, nano.tokenizer.encode(PROMPTS[1]), p], seeded)
    assert together[0] == alone and together[2] == alone


def test_stop_string_and_max_tokens_end_sequences(nano, engine_for):
    engine = engine_for()
    p = nano.tokenizer.encode(PROMPTS[0])
    full, _ = run(engine, [p], opts(max_tokens=20, temperature=0.0))[0]
    text = nano.tokenizer.decode(full)
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip(), text
    box = queue.Queue()
    engine.submit(p, [opts(max_tokens=20, temperature=0.0, stop=[stop])], box.put)
    streamed, out = "", None
    while out is None or not out.finished:
        out = box.get(timeout=30)
        streamed += out.text
    assert out.finish_reason == "stop" and streamed == text[: text.index(stop)]
    assert run(engine, [p], opts(max_tokens=3, temperature=0.0))[0] == (full[:3], "length")


def test_full_queue_refuses_and_abort_frees_blocks(nano, engine_for):
    engine = engine_for(max_batch=1, max_queue=0)
    p = nano.tokenizer.encode(PROMPTS[2])
    box = queue.Queue()
    [sid] = engine.submit(p, [opts(max_tokens=400, temperature=0.0, ignore_eos=True)], box.put)
    first = box.get(timeout=30)  # running now, holding blocks
    assert not first.finished and engine.cache.num_used_blocks > 0
    with pytest.raises(QueueFull, match="retry later"):
        engine.submit(p, [opts(max_tokens=4)], box.put)
    engine.abort([sid])
    out = first
    while not out.finished:
        out = box.get(timeout=30)
    assert out.finish_reason == "abort"
    assert engine.cache.num_used_blocks == 0
