"""Weight-only quantization: INT8 per output channel and INT4 group-wise, as a transform + module swap.

Two steps, in the manner of gpt-fast's `quantize.py`:

- the transform: `quantize_int8(w)` / `quantize_int4(w, group_size)` turn a float matrix into an
  `Int8Weight` / `Int4Weight` (`llm.infer.linear_weight`);
- the module swap: `quantize_model(model, QuantConfig(bits=4, group_size=64))` replaces every
  `nn.Linear` of a GPT's blocks (and, optionally, the embedding / output head) by a
  `QuantizedLinear` / `QuantizedEmbedding` holding the packed tensors as buffers, so
  `model.state_dict()` is the quantized checkpoint and `model(...)` still runs.

INT8 is symmetric (scale = max|w| / 127 per row); INT4 is asymmetric (scale and min per group
of 32/64/128 columns, like GGUF's Q4_1) with a small search over clipping ranges that
minimises the group's squared error. Scales are float16 and the codes are computed against
the rounded scale, so dequantization reproduces exactly what was measured.

The model's other code is untouched: attention, norms and activations stay float.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from llm.errors import InferenceError
from llm.infer.linear_weight import FloatWeight, Int4Weight, Int8Weight, LinearWeight
from llm.model import GPT

__all__ = [
    "VALID_BITS",
    "VALID_GROUP_SIZES",
    "QuantConfig",
    "quantize_int8",
    "quantize_int4",
    "quantize_weight",
    "QuantizedLinear",
    "QuantizedEmbedding",
    "quantize_model",
    "is_quantized",
]

VALID_BITS = (8, 4)
VALID_GROUP_SIZES = (32, 64, 128)
_FP16_TINY = 2.0**-24  # smallest positive float16; a zero scale would divide by zero


@dataclass(frozen=True)
class QuantConfig:
    """bits 8 (group_size None = one scale per output row) or 4 (group_size 32/64/128, default 64)."""

    bits: int
    group_size: int | None = None
    embeddings: bool = True  # also quantize the token embedding / output head

    def __post_init__(self) -> None:
        if self.bits not in VALID_BITS:
            raise InferenceError(f"unsupported quantization bits {self.bits}; valid: {', '.join(map(str, VALID_BITS))}")
        if self.group_size is not None and self.group_size not in VALID_GROUP_SIZES:
            raise InferenceError(
                f"unsupported group size {self.group_size}; valid: {', '.join(map(str, VALID_GROUP_SIZES))}"
                + (" (or none for int8: one scale per output channel)" if self.bits == 8 else "")
            )

    @property
    def effective_group_size(self) -> int | None:
        return self.group_size if self.bits == 8 else (self.group_size or 64)

    def describe(self) -> str:
        g = self.effective_group_size
        return f"int{self.bits}" + (f"/g{g}" if g else "") + ("" if self.embeddings else " (float embeddings)")


def _grouped(w: torch.Tensor, group_size: int | None) -> torch.Tensor:
    """w (N, K) as (N, K/G, G); G = K when group_size is None."""
    N, K = w.shape
    G = group_size or K
    if K % G:
        raise InferenceError(f"a weight with {K} columns cannot be split into groups of {G}; choose a divisor of {K}")
    return w.float().reshape(N, K // G, G)


@torch.no_grad()
def quantize_int8(w: torch.Tensor, group_size: int | None = None) -> Int8Weight:
    """Symmetric int8: q = round(w / s), s = max|w| / 127 per row (or per group of columns)."""
    g = _grouped(w, group_size)  # (N, groups, G)
    scale = (g.abs().amax(-1) / 127.0).clamp(min=_FP16_TINY).to(torch.float16)  # (N, groups)
    q = (g / scale.float().unsqueeze(-1)).round().clamp(-127, 127).to(torch.int8)
    return Int8Weight(q.reshape(w.shape), scale)


def _pack_int4(q: torch.Tensor) -> torch.Tensor:
    """q (N, K) in 0..15 -> (N, K/2) bytes; in each 32-weight block byte i = q[i] | q[i+16] << 4."""
    N = q.shape[0]
    blocks = q.to(torch.uint8).reshape(N, -1, 2, 16)  # (N, K/32, 2, 16)
    return (blocks[:, :, 0] | (blocks[:, :, 1] << 4)).reshape(N, -1)


# Fractions of each group's [min, max] range tried as the clipping range (shrunk towards the
# group mean); clipping a few outliers often lowers the squared error of the other weights.
_INT4_SHRINKS = (1.0, 0.97, 0.94, 0.9, 0.85, 0.8)
_INT4_REFINE_STEPS = 4


def _int4_codes(g: torch.Tensor, scale: torch.Tensor, minv: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Codes and squared error of groups g (N, groups, G) for float16-rounded scale/min (N, groups)."""
    scale = scale.clamp(min=_FP16_TINY).to(torch.float16)
    minv = minv.to(torch.float16)
    s, m = scale.float().unsqueeze(-1), minv.float().unsqueeze(-1)
    q = ((g - m) / s).round().clamp(0, 15)
    return q, scale, minv, ((q * s + m - g) ** 2).sum(-1)


def _keep_better(best: tuple[torch.Tensor, ...] | None, cand: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    if best is None:
        return cand
    better = cand[3] < best[3]  # (N, groups)
    return tuple(torch.where(better.unsqueeze(-1) if c.dim() == 3 else better, c, b) for c, b in zip(cand, best))


@torch.no_grad()
def quantize_int4(w: torch.Tensor, group_size: int = 64) -> Int4Weight:
    """Asymmetric int4 per group: w ~ q * scale + min, q in 0..15, packed two per byte.

    Each group tries a few clipping ranges, then refines scale and min by least squares for the
    chosen codes (alternating, as in llama.cpp's k-quant search); the lowest squared error wins.
    When K is not a multiple of the group size, the largest valid size dividing K is used.
    """
    if group_size not in VALID_GROUP_SIZES:
        raise InferenceError(f"unsupported group size {group_size}; valid: {', '.join(map(str, VALID_GROUP_SIZES))}")
    K = w.shape[1]
    fitting = [G for G in VALID_GROUP_SIZES if G <= group_size and K % G == 0]
    if not fitting:
        raise InferenceError(f"a weight with {K} columns cannot be split into int4 groups of 32, 64 or 128")
    g = _grouped(w, max(fitting))  # (N, groups, G)
    lo, hi, mid = g.amin(-1), g.amax(-1), g.mean(-1)
    best = None
    for shrink in _INT4_SHRINKS:
        cand_lo, cand_hi = mid + (lo - mid) * shrink, mid + (hi - mid) * shrink
        best = _keep_better(best, _int4_codes(g, (cand_hi - cand_lo) / 15.0, cand_lo))
    n = g.shape[-1]
    for _ in range(_INT4_REFINE_STEPS):
        q = best[0]
        sq, sw, sqq, sqw = q.sum(-1), g.sum(-1), (q * q).sum(-1), (q * g).sum(-1)
        den = n * sqq - sq * sq
        scale = torch.where(den > 0, (n * sqw - sq * sw) / den.clamp(min=1e-12), best[1].float())
        best = _keep_better(best, _int4_codes(g, scale, (sw - scale * sq) / n))
    q, scale, minv, _ = best
    return Int4Weight(_pack_int4(q.reshape(w.shape)), scale, minv)


def quantize_weight(w: torch.Tensor, config: QuantConfig) -> LinearWeight:
    if config.bits == 8:
        return quantize_int8(w, config.group_size)
    return quantize_int4(w, config.effective_group_size or 64)


class QuantizedLinear(nn.Module):
    """Drop-in for a bias-free nn.Linear whose weight is packed (buffers named as in `linear_weight`)."""

    def __init__(self, weight: LinearWeight) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        for key, tensor in weight.state("").items():
            self.register_buffer(key.lstrip("."), tensor)

    def linear_weight(self) -> LinearWeight:
        if hasattr(self, "weight_q8"):
            return Int8Weight(self.weight_q8, self.weight_scale)
        if hasattr(self, "weight_q4"):
            return Int4Weight(self.weight_q4, self.weight_scale, self.weight_min)
        return FloatWeight(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_weight().matmul(x).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.linear_weight().kind}"


class QuantizedEmbedding(QuantizedLinear):
    """Drop-in for nn.Embedding over a packed table: looks rows up and dequantizes them."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.linear_weight().rows(ids)


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, QuantizedLinear) for m in model.modules())


@torch.no_grad()
def quantize_model(model: GPT, config: QuantConfig) -> GPT:
    """Swap the GPT's linear layers (and the embedding / head if asked) for quantized modules, in place."""
    if is_quantized(model):
        raise InferenceError("this model is already quantized; quantize the float checkpoint instead")
    for block in model.blocks:
        # a Mixture of Experts packs its experts (`ffn_modules`); its router stays float
        for parent in (block.attn, *getattr(block.ffn, "ffn_modules", (block.ffn,))):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, QuantizedLinear(quantize_weight(child.weight.detach(), config)))
    if config.embeddings:
        table = quantize_weight(model.tok_emb.weight.detach(), config)
        model.tok_emb = QuantizedEmbedding(table)
        head = table if model.config.tie_embeddings else quantize_weight(model.lm_head.weight.detach(), config)
        model.lm_head = QuantizedLinear(head)
    return model
