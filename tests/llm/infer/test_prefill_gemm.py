"""Prompt chunks through bfloat16 GEMMs: every weight format, the causal flash path, and decoding left exact."""

import pytest
import torch
import torch.nn.functional as F

from llm.config import ModelConfig
from llm.infer import kernels
from llm.infer.inference_model import PREFILL_GEMM_MIN_TOKENS, InferenceModel, SplitWeight
from llm.infer.linear_weight import FloatWeight
from llm.infer.paged_kv import PagedKVCache
from llm.infer.quantize import quantize_int4, quantize_int8
from llm.model import GPT


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def weights(w):
    return {"fp32": FloatWeight(w), "bf16": FloatWeight(w.bfloat16()), "int8": quantize_int8(w, 64), "int4": quantize_int4(w, 64)}


@pytest.mark.parametrize("kind", ["fp32", "bf16", "int8", "int4", "split"])
def test_gemm_bf16_is_the_bf16_product_of_the_dequantized_matrix(kind):
    torch.manual_seed(0)
    w, x = torch.randn(96, 128) * 0.1, torch.randn(2, 40, 128)  # (B, T, K) rows of a prompt chunk
    table = weights(w)
    weight = SplitWeight([table["int8"], table["fp32"]]) if kind == "split" else table[kind]
    got = weight.gemm_bf16(x)
    dense = torch.cat([p.dequantize() for p in weight.parts]) if kind == "split" else weight.dequantize()
    assert got.shape == (2, 40, dense.shape[0]) and got.dtype == torch.float32
    torch.testing.assert_close(got, F.linear(x.bfloat16(), dense.bfloat16()).float())
    assert rel_err(got, x @ dense.T) < 2e-2  # bf16 inputs, float32 accumulation
    assert torch.equal(weight.gemm_bf16(x), got)  # the bf16 copy is made once and reused


def test_a_whole_prompt_takes_the_causal_path_and_a_chunk_the_masked_one():
    torch.manual_seed(1)
    B, H, Kh, T, E = 1, 4, 2, 300, 16
    q = torch.randn(B, H, T, E)
    k, v = torch.randn(B, Kh, T + 20, E), torch.randn(B, Kh, T + 20, E)  # slots past the prompt are garbage
    with kernels.force_reference():
        whole = kernels.attention(q, k, v, torch.arange(T).unsqueeze(0))
        chunk = kernels.attention(q, k, v, torch.arange(20, T + 20).unsqueeze(0))
    for y, offset in ((whole, 0), (chunk, 20)):
        S = T + offset
        mask = torch.arange(S) <= (torch.arange(T) + offset).unsqueeze(-1)  # (T, S)
        want = F.scaled_dot_product_attention(q, k[:, :, :S], v[:, :, :S], attn_mask=mask, enable_gqa=True)
        torch.testing.assert_close(y, want.transpose(1, 2), atol=1e-5, rtol=1e-5)


@torch.inference_mode()
def test_bf16_prefill_reads_prompts_closely_and_leaves_decoding_steps_exact():
    torch.manual_seed(2)
    cfg = ModelConfig(vocab_size=96, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128, max_seq_len=128)
    gpt = GPT(cfg).eval()
    exact, fast = InferenceModel.from_gpt(gpt), InferenceModel.from_gpt(gpt)
    fast.prefill_dtype = torch.bfloat16
    prompt = torch.randint(0, 96, (1, 70))
    caches = [PagedKVCache.for_model(m, num_blocks=8, block_size=16) for m in (exact, fast)]
    logits = []
    for m, cache in zip((exact, fast), caches):
        cache.reserve(0, 71)
        logits.append(m(prompt, torch.arange(70), cache.batch([0])))  # (1, 70, V)
    assert 1e-7 < rel_err(logits[1], logits[0]) < 3e-2  # bf16 really ran, and stayed close
    # A decoding step (1 token) and a short chunk run the float32 kernels in both models: over
    # the same cache they agree exactly.
    for t in (1, PREFILL_GEMM_MIN_TOKENS - 1):
        step = torch.randint(0, 96, (1, t))
        pos = torch.arange(70 - t, 70).unsqueeze(0)
        caches[0].reserve(0, 70)
        a = exact(step, pos, caches[0].batch([0]))
        b = fast(step, pos, caches[0].batch([0]))
        assert torch.equal(a, b)
