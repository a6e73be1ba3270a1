"""Speculative decoding of a lone stream: the output stays exactly greedy; proposals get accepted."""

import queue

import httpx
from serve_testkit import running_server

from llm.checkpoint import load_checkpoint
from llm.infer.loading import stop_ids
from llm.infer.drafters import ModelDrafter, PromptLookupDrafter
from llm.infer.inference_model import InferenceModel
from llm.infer.sampling import SamplingParams
from llm.serve.batch_engine import BatchEngine
from llm.serve.sequence import SamplingOptions

PROMPTS = ["calculator", "The quick brown fox", "17*23"]


def generate(engine, prompt, n=40):
    box = queue.Queue()
    engine.submit(prompt, [SamplingOptions(SamplingParams(max_tokens=n, temperature=0.0))], box.put)
    tokens, out = [], None
    while out is None or not out.finished:
        out = box.get(timeout=60)
        tokens += out.token_ids
    return tokens


def engine(nano, drafter=None):
    e = BatchEngine(nano.model, nano.tokenizer, end_ids=set(stop_ids(nano)), kv_blocks=64, block_size=8, drafter=drafter)
    e.start()
    return e


def accepted(e):
    return e.metrics.speculative_accepted._value.get(), e.metrics.speculative_proposed._value.get()


def test_prompt_lookup_keeps_greedy_output_and_takes_fewer_steps(nano):
    plain, spec = engine(nano), engine(nano, PromptLookupDrafter())
    try:
        for text in PROMPTS:
            p = nano.tokenizer.encode(text)
            assert generate(spec, p) == generate(plain, p)
        ok, proposed = accepted(spec)
        assert proposed > 0 and ok > 0
        assert spec.steps < plain.steps  # accepted drafts are tokens without a step of their own
    finally:
        plain.shutdown()
        spec.shutdown()


def test_a_draft_model_identical_to_the_target_is_always_accepted(nano):
    drafter = ModelDrafter(InferenceModel.from_gpt(nano.model), nano.tokenizer)
    drafter.start(512)
    plain, spec = engine(nano), engine(nano, drafter)
    try:
        for text in PROMPTS:
            p = nano.tokenizer.encode(text)
            assert generate(spec, p) == generate(plain, p)
        ok, proposed = accepted(spec)
        assert proposed > 0 and ok / proposed > 0.9  # float rounding aside, the target agrees with itself
    finally:
        plain.shutdown()
        spec.shutdown()


def test_quantized_server_model_runs(nano_ckpt):
    fresh = load_checkpoint(nano_ckpt)  # quantization swaps modules in place: keep the shared fixture float
    with running_server(fresh, quantize=8, kv_blocks=32, block_size=8) as (url, engine):
        assert "int8" in engine.runner.model.kinds()
        body = {"model": "nano", "prompt": "The quick brown fox", "max_tokens": 5, "temperature": 0}
        r = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1


def test_server_draft_option_wires_a_model_drafter(nano, nano_ckpt):
    with running_server(nano, draft=str(nano_ckpt), kv_blocks=64, block_size=8) as (url, engine):
        body = {"model": "nano", "prompt": "calculator", "max_tokens": 24, "temperature": 0}
        r = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
        assert r.status_code == 200
        ok, proposed = accepted(engine)
        assert proposed > 0 and ok > 0
