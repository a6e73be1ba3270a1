"""The static KV cache and the inference model against the naive reference: GPT without a cache."""

import pytest
import torch

from llm.infer import kernels
from llm.infer.engine import decode_step, prefill
from llm.infer.inference_model import InferenceModel
from llm.infer.kv_cache import KVCache


def reference_logits(model, ids):
    logits, _ = model(torch.tensor([ids]))
    return logits[0]  # (T, V)


@pytest.mark.parametrize("style", ["half", "interleaved"])
@pytest.mark.parametrize("kv_heads", [4, 2])
@pytest.mark.parametrize("native", [True, False])
def test_cached_decoding_equals_full_forward(style, kv_heads, native, make_model):
    model = make_model(rope_style=style, n_kv_heads=kv_heads)
    im = InferenceModel.from_gpt(model)
    ids = torch.randint(0, 300, (20,)).tolist()
    full = reference_logits(model, ids)
    ctx = kernels.force_reference() if not native else torch.no_grad()
    with ctx:
        assert (im(torch.tensor([ids]), torch.arange(20))[0] - full).abs().max() < 1e-4  # no cache
        cache = KVCache.for_model(im, capacity=20)
        steps = [im(torch.tensor([ids[:12]]), torch.arange(12), cache)[0]]
        for t in range(12, 20):
            steps.append(decode_step(im, cache, torch.tensor([ids[t]]), torch.tensor([t])))
    assert (torch.cat(steps) - full).abs().max() < 1e-4


def test_gpt_forward_runs_on_the_static_cache(make_model):
    model = make_model()
    ids = torch.randint(0, 300, (1, 10))
    full, _ = model(ids)
    cache = KVCache.for_model(model, capacity=10)
    pre, _ = model(ids[:, :6], positions=torch.arange(6), kv_cache=cache)
    outs = [pre] + [model(ids[:, t : t + 1], positions=torch.tensor([t]), kv_cache=cache)[0] for t in range(6, 10)]
    assert (torch.cat(outs, dim=1) - full).abs().max() < 1e-5


def test_rows_at_different_positions_match_separate_runs(make_model):
    """A batch of prompts of different lengths (right-padded) decodes like each prompt alone."""
    model = make_model(seed=3)
    im = InferenceModel.from_gpt(model)
    prompts = [torch.randint(0, 300, (n,)).tolist() for n in (3, 9, 6)]
    cache = KVCache.for_model(im, batch=3, capacity=16)
    logits = prefill(im, cache, prompts)  # (3, V)
    positions = torch.tensor([len(p) for p in prompts])
    nxt = logits.argmax(-1)
    for b, p in enumerate(prompts):
        assert (logits[b] - reference_logits(model, p)[-1]).abs().max() < 1e-4
    stepped = decode_step(im, cache, nxt, positions)  # each row at its own position
    for b, p in enumerate(prompts):
        assert (stepped[b] - reference_logits(model, p + [int(nxt[b])])[-1]).abs().max() < 1e-4


def test_rolled_back_slots_are_invisible_and_overwritten(make_model):
    """Speculative rejection leaves stale slots past the accepted position; they must not matter."""
    model = make_model(seed=4)
    im = InferenceModel.from_gpt(model)
    ids = torch.randint(0, 300, (12,)).tolist()
    cache = KVCache.for_model(im, capacity=16)
    im(torch.tensor([ids[:8] + [1, 2, 3]]), torch.arange(11), cache)  # 3 "drafts" that get rejected
    out = im(torch.tensor([ids[8:]]), torch.arange(8, 12), cache)[0]
    assert (out - reference_logits(model, ids)[8:]).abs().max() < 1e-4


def test_cache_refuses_positions_past_its_capacity(make_model):
    from llm.errors import InferenceError

    im = InferenceModel.from_gpt(make_model())
    cache = KVCache.for_model(im, capacity=4)
    with pytest.raises(InferenceError, match="0..3"):
        im(torch.tensor([[1, 2, 3, 4, 5]]), torch.arange(5), cache)
