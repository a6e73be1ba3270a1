"""The lean training paths (RMSNorm under autocast, RoPE, SwiGLU, LoRA's fused update) against plain expressions."""

import pytest
import torch
import torch.nn.functional as F

from llm.config import ModelConfig
from llm.lora import LoRALinear
from llm.model import GPT, RMSNorm, apply_rope, precompute_rope, rope_tables


def _grads(fn, *inputs):
    inputs = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = fn(*inputs)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    out.backward(g)
    return out.detach(), [t.grad for t in inputs if t.requires_grad]


def _textbook_rope(x, cos, sin, style):  # cos/sin (T, E/2)
    if style == "interleaved":
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


@pytest.mark.parametrize("style", ["half", "interleaved"])
def test_rope_forward_and_backward_are_the_textbook_rotation_bit_for_bit(style):
    x = torch.randn(2, 3, 10, 8)
    cos, sin = precompute_rope(8, 16, 10000.0)
    full_cos, full_sin = rope_tables(cos[:10][None], sin[:10][None], style, torch.float32)
    got, got_grad = _grads(lambda t: apply_rope(t, full_cos, full_sin, style), x)
    want, want_grad = _grads(lambda t: _textbook_rope(t, cos[:10], sin[:10], style), x)
    assert torch.equal(got, want) and torch.equal(got_grad[0], want_grad[0])


def test_swiglu_backward_equals_autograd_of_the_plain_expression():
    model = GPT(ModelConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, ffn_hidden=24,
                            max_seq_len=16))
    ffn = model.blocks[0].ffn
    x = torch.randn(2, 5, 16)
    got, got_grad = _grads(ffn, x)
    want, want_grad = _grads(lambda t: ffn.w_down(F.silu(ffn.w_gate(t)) * ffn.w_up(t)), x)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    torch.testing.assert_close(got_grad[0], want_grad[0], atol=1e-7, rtol=1e-6)


def test_rmsnorm_under_autocast_matches_float32_and_keeps_only_its_input():
    norm = RMSNorm(16, 1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 7, 16) * 5
    g = torch.randn(3, 7, 16)

    w = norm.weight.detach().clone().requires_grad_()
    xp = x.clone().requires_grad_()
    want = xp * torch.rsqrt(xp.pow(2).mean(-1, keepdim=True) + 1e-5) * w
    want.backward(g)

    xl = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = norm(xl)
    assert got.dtype == torch.bfloat16  # cast once for the Linears that read it
    got.backward(g.bfloat16())
    torch.testing.assert_close(got.float(), want, atol=0.05, rtol=0.01)  # bf16 output rounding only
    # float32 math from a bf16 upstream gradient
    torch.testing.assert_close(xl.grad, xp.grad, atol=0.02, rtol=0.02)
    torch.testing.assert_close(norm.weight.grad, w.grad, atol=0.05, rtol=0.02)

    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            norm(x.clone().requires_grad_())
    assert sorted(saved) == sorted([x.numel(), 16, x.numel() // 16])  # x, weight, 1/rms per row


def test_lora_update_inside_the_gemm_equals_the_plain_formula():
    torch.manual_seed(0)
    layer = LoRALinear(torch.nn.Linear(12, 20, bias=False), rank=4, alpha=8)
    torch.nn.init.normal_(layer.lora_B, std=0.1)
    x = torch.randn(3, 5, 12, requires_grad=True)
    g = torch.randn(3, 5, 20)
    layer(x).backward(g)
    got = [x.grad.clone(), layer.lora_A.grad.clone(), layer.lora_B.grad.clone()]
    x.grad = layer.lora_A.grad = layer.lora_B.grad = None
    plain = F.linear(x, layer.weight) + F.linear(F.linear(x, layer.lora_A), layer.lora_B) * layer.scale
    plain.backward(g)
    for a, b in zip(got, [x.grad, layer.lora_A.grad, layer.lora_B.grad]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert layer.weight.grad is None  # frozen
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
