"""The fused decoding step (all layers in one native call) against the op-by-op loop and the PyTorch reference.

For every weight format (fp32, bf16, int8, int4/g64) and both caches (the engine's static
KVCache, the server's paged pool): the fused step equals the op-by-op native loop bit for bit
(logits and the keys/values it writes), stays within rounding of the PyTorch reference, and
greedy generation gives the same tokens.
"""

import shutil

import pytest
import torch

from llm.errors import InferenceError
from llm.infer import kernels
from llm.infer.engine import Engine
from llm.infer.inference_model import InferenceModel, SplitWeight
from llm.infer.kv_cache import KVCache
from llm.infer.linear_weight import FloatWeight
from llm.infer.paged_kv import PagedKVCache
from llm.infer.quantize import QuantConfig, quantize_model
from llm.infer.sampling import SamplingParams

pytestmark = pytest.mark.skipif(shutil.which("c++") is None or shutil.which("ninja") is None, reason="no C++ toolchain")

FORMATS = ["fp32", "bf16", "int8", "int4"]
SHAPE = dict(d_model=128, n_layers=3, n_heads=4, n_kv_heads=2, ffn_hidden=256, max_seq_len=96)


@pytest.fixture
def inference_model(make_model):
    """Factory: inference_model(fmt, rope_style) -> a tiny InferenceModel with fp32/bf16/int8/int4 weights."""
    return lambda fmt, rope_style="interleaved": _inference_model(make_model, fmt, rope_style)


def _inference_model(make_model, fmt: str, rope_style: str) -> InferenceModel:
    gpt = make_model(seed=3, sharp=2.0, rope_style=rope_style, **SHAPE)
    if fmt in ("int8", "int4"):
        quantize_model(gpt, QuantConfig(bits=8) if fmt == "int8" else QuantConfig(bits=4, group_size=64))
    model = InferenceModel.from_gpt(gpt, "bfloat16" if fmt == "bf16" else "float32")
    assert kernels.native_kernels() is not None, kernels.kernel_status()
    return model


def run(model: InferenceModel, fused: bool, *args, **kw) -> torch.Tensor:
    model.fuse_decode = fused
    try:
        return model(*args, **kw)
    finally:
        model.fuse_decode = True


def close(a: torch.Tensor, b: torch.Tensor, rel: float) -> bool:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-6)) < rel


PROMPTS = [[5, 9, 13, 2, 7, 1, 30, 8, 4, 11, 12, 60, 3, 3, 9, 20, 21, 22, 40, 41], list(range(40, 53)), [7, 7, 8]]


def prefilled_static(model: InferenceModel) -> tuple[KVCache, torch.Tensor, torch.Tensor]:
    """A static cache holding three right-padded prompts (op by op), their next tokens and positions."""
    cache = KVCache.for_model(model, batch=len(PROMPTS), capacity=64)
    T = max(map(len, PROMPTS))
    tokens = torch.zeros(len(PROMPTS), T, dtype=torch.long)
    for b, p in enumerate(PROMPTS):
        tokens[b, : len(p)] = torch.tensor(p)
    last = torch.tensor([len(p) - 1 for p in PROMPTS])
    logits = run(model, False, tokens, torch.arange(T), cache, logits_at=last)[:, 0]
    return cache, logits.argmax(-1), last + 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_fused_step_equals_op_by_op_on_the_static_cache(fmt, inference_model):
    model = inference_model(fmt)
    cache, nxt, pos = prefilled_static(model)
    twin = KVCache.for_model(model, batch=len(PROMPTS), capacity=64)
    twin.k.copy_(cache.k), twin.v.copy_(cache.v)
    for _ in range(4):  # rows at different positions
        fused = run(model, True, nxt.unsqueeze(1), pos.unsqueeze(1), cache, last_only=True)[:, 0]
        loop = run(model, False, nxt.unsqueeze(1), pos.unsqueeze(1), twin, last_only=True)[:, 0]
        assert torch.equal(fused, loop)
        assert torch.equal(cache.k, twin.k) and torch.equal(cache.v, twin.v)
        assert cache.length == twin.length
        nxt, pos = fused.argmax(-1), pos + 1
    assert model._fused.steps == 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_fused_step_is_within_rounding_of_the_pytorch_reference(fmt, inference_model):
    model = inference_model(fmt, rope_style="half")
    cache, nxt, pos = prefilled_static(model)
    ref_cache = KVCache.for_model(model, batch=len(PROMPTS), capacity=64)
    ref_cache.k.copy_(cache.k), ref_cache.v.copy_(cache.v)
    fused = model(nxt.unsqueeze(1), pos.unsqueeze(1), cache, last_only=True)
    with kernels.force_reference():
        ref = model(nxt.unsqueeze(1), pos.unsqueeze(1), ref_cache, last_only=True)
    # int8/int4: the native kernels round x to 16-bit fixed point per block of 32.
    assert close(fused, ref, 1e-5 if fmt in ("fp32", "bf16") else 2e-3)
    assert close(cache.k, ref_cache.k, 1e-5 if fmt in ("fp32", "bf16") else 2e-3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_greedy_generation_gives_the_same_tokens_fused_op_by_op_and_reference(fmt, inference_model):
    model = inference_model(fmt)
    engine = Engine(model, threads=torch.get_num_threads())
    params = SamplingParams(max_tokens=16, ignore_eos=True)
    fused = [c.tokens for c in engine.generate(PROMPTS, params)]
    steps = model._fused.steps
    model.fuse_decode = False
    loop = [c.tokens for c in engine.generate(PROMPTS, params)]
    model.fuse_decode = True
    with kernels.force_reference():
        ref = [c.tokens for c in engine.generate(PROMPTS, params)]
    assert steps >= 15 and model._fused.steps == steps  # the decoding steps ran fused, only them
    assert fused == loop == ref


@pytest.mark.parametrize("fmt", FORMATS)
def test_fused_step_equals_op_by_op_on_the_paged_cache(fmt, inference_model):
    """The server's decode step: a batch of sequences at different lengths, reading K/V through block tables."""
    model = inference_model(fmt)
    pools = [PagedKVCache.for_model(model, num_blocks=24, block_size=4) for _ in range(2)]
    seqs = [10, 11, 12]
    for pool in pools:
        for sid, prompt in zip(seqs, PROMPTS):
            pool.reserve(sid, len(prompt) + 8)
            run(model, False, torch.tensor([prompt]), torch.arange(len(prompt)), pool.batch([sid]))
    nxt = torch.tensor([[p[-1]] for p in PROMPTS])
    pos = torch.tensor([[len(p)] for p in PROMPTS])
    for _ in range(5):
        fused = run(model, True, nxt, pos, pools[0].batch(seqs), last_only=True)
        loop = run(model, False, nxt, pos, pools[1].batch(seqs), last_only=True)
        assert torch.equal(fused, loop)
        assert torch.equal(pools[0].k, pools[1].k) and torch.equal(pools[0].v, pools[1].v)
        nxt, pos = fused.argmax(-1), pos + 1
    assert model._fused.steps == 5


def test_prompt_chunks_and_unfusable_layers_take_the_loop(inference_model):
    model = inference_model("fp32")
    cache = KVCache.for_model(model, batch=1, capacity=64)
    model(torch.arange(17).unsqueeze(0), torch.arange(17), cache)  # 17 new tokens: a prompt chunk
    assert model._fused.steps == 0
    model(torch.tensor([[3]]), torch.tensor([17]), cache)
    assert model._fused.steps == 1
    with kernels.force_reference():
        model(torch.tensor([[3]]), torch.tensor([18]), cache)
    assert model._fused.steps == 1
    # Gate and up in separate matrices (as when their formats differ): the model cannot fuse.
    split = inference_model("fp32")
    w = split.layers[1].w_gate_up.w
    split.layers[1].w_gate_up = SplitWeight([FloatWeight(w[: w.shape[0] // 2]), FloatWeight(w[w.shape[0] // 2 :])])
    split(torch.tensor([[3]]), torch.tensor([0]), KVCache.for_model(split, batch=1, capacity=8))
    assert split._fused is False


def test_a_position_past_the_cache_is_a_clear_error(inference_model):
    model = inference_model("int8")
    cache = KVCache.for_model(model, batch=1, capacity=8)
    with pytest.raises(InferenceError, match="0..7"):
        model(torch.tensor([[3]]), torch.tensor([8]), cache)
