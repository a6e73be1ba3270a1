"""The model's weights re-laid out for fast inference, and the forward pass that uses them.

`InferenceModel.from_gpt(model)` takes a `llm.model.GPT` (float, or with quantized modules
swapped in by `llm.infer.quantize`) and builds the same function with fewer, larger steps:

- Q, K and V projections fused into one matrix, gate and up projections into another, so a
  decode step runs 4 matmuls per layer instead of 7;
- every matrix is a `LinearWeight` (fp32, bf16, int8 or int4) and runs on the weight-only
  kernels of `llm.infer.kernels`; activations stay float32;
- models with "half" RoPE get their Q/K rows permuted into "interleaved" order (q.k is
  unchanged when q and k are permuted alike), so one in-place kernel rotates both styles;
- RMSNorm, RoPE, SwiGLU and attention are single native calls (`llm.infer.kernels`), and
  grouped-query attention reads each K/V head once for its group of query heads instead
  of copying K/V per query head;
- a decoding step (a few new tokens per row) over the static or the paged cache runs all
  layers in one native call (`llm.infer.fused_decode`), bit-identical to the loop here;
  `fuse_decode = False` (or `LLM_FUSED_DECODE=0`) keeps the op-by-op loop.
- with `prefill_dtype=bfloat16`, rows of `PREFILL_GEMM_MIN_TOKENS` or more new tokens (a
  prompt chunk, never a decoding step or a speculative check) go through bfloat16 GEMMs
  (`LinearWeight.gemm_bf16`, a bf16 copy of each matrix made at first use) instead of the
  GEMV-style kernels: prompt reading becomes compute-bound on the CPU's bf16 units. Keys
  and values then carry bf16 rounding; decoding stays float32.

The forward pass takes any cache implementing the model's `KVCacheLike` protocol (the static
`KVCache`, the paged cache of the server) and explicit positions, so rows of a batch may sit
at different positions. `llm.model.GPT` stays the readable reference: tests check that both
give the same logits.

Tensor letters: B batch, T new tokens, S keys, D model width, H query heads, K kv heads,
E head dim, F feed-forward width, V vocabulary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from llm.config import ModelConfig
from llm.errors import InferenceError
from llm.infer.linear_weight import FloatWeight, Int4Weight, Int8Weight, LinearWeight
from llm.infer import kernels
from llm.infer.fused_decode import FusedLayers
from llm.model import GPT, KVCacheLike, precompute_rope

__all__ = ["InferenceModel", "SplitWeight", "linear_weight_of", "PREFILL_GEMM_MIN_TOKENS"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

# New tokens per row from which a pass is a prompt chunk for `prefill_dtype` (a decoding step
# has 1, a speculative check at most 17).
PREFILL_GEMM_MIN_TOKENS = 32


class SplitWeight:
    """Projections that cannot be fused (different formats): one matmul each, outputs concatenated."""

    def __init__(self, parts: list[LinearWeight]) -> None:
        self.parts = parts
        self.shape = (sum(p.shape[0] for p in parts), parts[0].shape[1])

    @property
    def kind(self) -> str:
        return "+".join(p.kind for p in self.parts)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p.matmul(x) for p in self.parts], dim=-1)

    def gemm_bf16(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p.gemm_bf16(x) for p in self.parts], dim=-1)


def _fuse(parts: list[LinearWeight]) -> LinearWeight | SplitWeight:
    """One matrix whose output is the parts' outputs side by side, when their formats allow."""
    first = parts[0]
    same = all(type(p) is type(first) for p in parts)
    if same and isinstance(first, FloatWeight) and all(p.w.dtype == first.w.dtype for p in parts):
        return FloatWeight.concat(parts)
    if same and isinstance(first, (Int8Weight, Int4Weight)) and all(p.group_size == first.group_size for p in parts):
        return type(first).concat(parts)
    return SplitWeight(parts)


def linear_weight_of(module: nn.Module, dtype: torch.dtype) -> LinearWeight:
    """The matrix of an nn.Linear / nn.Embedding (cast to `dtype`) or of a quantized module (as is)."""
    if hasattr(module, "linear_weight"):
        return module.linear_weight()
    return FloatWeight(module.weight.detach().to(dtype))


def _interleave_rows(n_heads: int, head_dim: int) -> torch.Tensor:
    """Row order that turns "half" RoPE pairs (i, i + E/2) into "interleaved" pairs (2i, 2i + 1)."""
    half = torch.arange(head_dim // 2)
    per_head = torch.stack((half, half + head_dim // 2), dim=1).flatten()  # (E,): 0, E/2, 1, E/2+1, ...
    return (torch.arange(n_heads).unsqueeze(1) * head_dim + per_head).flatten()  # (H*E,)


@dataclass
class _Layer:
    attn_norm: torch.Tensor  # (D,)
    wqkv: LinearWeight | SplitWeight  # (H*E + 2*K*E, D)
    wo: LinearWeight  # (D, H*E)
    ffn_norm: torch.Tensor  # (D,)
    w_gate_up: LinearWeight | SplitWeight | None  # (2F, D); None when the block's FFN is not SwiGLU
    w_down: LinearWeight | None  # (D, F)
    ffn: Callable[[torch.Tensor], torch.Tensor] | None  # the block's own FFN module otherwise


class InferenceModel:
    """A GPT's function with inference-friendly weights; build it with `from_gpt`."""

    def __init__(
        self,
        config: ModelConfig,
        tok_emb: LinearWeight,
        layers: list[_Layer],
        norm: torch.Tensor,
        lm_head: LinearWeight,
        dtype: torch.dtype,
    ) -> None:
        self.config = config
        self.tok_emb, self.layers, self.norm, self.lm_head = tok_emb, layers, norm, lm_head
        self.dtype = dtype
        self.prefill_dtype = torch.float32  # bfloat16: prompt chunks through bf16 GEMMs (module docstring)
        # Decoding steps through one native call for all layers (module docstring); LLM_FUSED_DECODE=0: op by op.
        self.fuse_decode = os.environ.get("LLM_FUSED_DECODE", "1") != "0"
        self._fused: FusedLayers | bool | None = None  # built at the first step; False: cannot fuse
        self.rope_cos, self.rope_sin = precompute_rope(config.head_dim, config.max_seq_len, config.rope_base)

    @classmethod
    @torch.inference_mode()
    def from_gpt(cls, model: GPT, dtype: str | torch.dtype = "float32") -> "InferenceModel":
        """Re-lay out `model`'s weights; float matrices become `dtype` (float32 or bfloat16)."""
        if isinstance(dtype, str) and dtype not in DTYPES:
            raise InferenceError(f"unsupported dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        dt = DTYPES[dtype] if isinstance(dtype, str) else dtype
        cfg = model.config
        H, K, E = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        layers = []
        for block in model.blocks:
            attn = block.attn
            wq, wk, wv = (linear_weight_of(m, dt) for m in (attn.wq, attn.wk, attn.wv))
            if cfg.rope_style == "half":
                wq, wk = wq.select_rows(_interleave_rows(H, E)), wk.select_rows(_interleave_rows(K, E))
            ffn = block.ffn
            swiglu = all(hasattr(ffn, n) for n in ("w_gate", "w_up", "w_down"))
            layers.append(
                _Layer(
                    attn_norm=block.attn_norm.weight.detach().float(),
                    wqkv=_fuse([wq, wk, wv]),
                    wo=linear_weight_of(attn.wo, dt),
                    ffn_norm=block.ffn_norm.weight.detach().float(),
                    w_gate_up=_fuse([linear_weight_of(ffn.w_gate, dt), linear_weight_of(ffn.w_up, dt)]) if swiglu else None,
                    w_down=linear_weight_of(ffn.w_down, dt) if swiglu else None,
                    ffn=None if swiglu else ffn,
                )
            )
        tok_emb = linear_weight_of(model.tok_emb, dt)
        lm_head = tok_emb if cfg.tie_embeddings else linear_weight_of(model.lm_head, dt)
        return cls(cfg, tok_emb, layers, model.norm.weight.detach().float(), lm_head, dt)

    @property
    def weight_bytes(self) -> int:
        """Bytes of all matrices read per decoded token (the tied embedding counted once)."""
        total = self.lm_head.nbytes + sum(
            m.nbytes for layer in self.layers for m in (layer.wqkv, layer.wo, layer.w_gate_up, layer.w_down) if m
        )
        return total

    def prefill_flops(self, n_tokens: int) -> float:
        """FLOPs of reading an n-token prompt in one causal pass: the layers' matmuls for every token,
        QK^T and AV over the causal triangle, and the head for the last token only.

        A block whose FFN is not SwiGLU (mixture of experts) counts its attention only.
        """
        cfg = self.config
        per_token = sum(m.shape[0] * m.shape[1] for layer in self.layers for m in (layer.wqkv, layer.wo, layer.w_gate_up, layer.w_down) if m)
        attention = 2 * cfg.n_layers * cfg.n_heads * cfg.head_dim * n_tokens * (n_tokens + 1)
        return 2.0 * per_token * n_tokens + attention + 2.0 * self.lm_head.shape[0] * self.lm_head.shape[1]

    def kinds(self) -> dict[str, int]:
        """How many matrices of each format the model holds, e.g. {"int4/g64": 120, "int8": 1}."""
        out: dict[str, int] = {}
        mats = [self.lm_head] + [m for layer in self.layers for m in (layer.wqkv, layer.wo, layer.w_gate_up, layer.w_down) if m]
        for m in mats:
            out[m.kind] = out.get(m.kind, 0) + 1
        return out

    @torch.inference_mode()
    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCacheLike | None = None,
        last_only: bool = False,
        logits_at: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Float32 logits (B, T, V) for tokens (B, T) at positions (B, T) or (T,).

        `last_only` returns the last position's logits (B, 1, V); `logits_at` (B,) picks one
        position per row instead (prompts of different lengths, right-padded). Without a
        cache the T tokens attend causally to each other only (a full forward pass).
        """
        cfg = self.config
        B, T = tokens.shape
        H, K, E, eps = cfg.n_heads, cfg.kv_heads, cfg.head_dim, cfg.norm_eps
        if positions.dim() == 1:
            positions = positions.unsqueeze(0).expand(B, T)
        # A cache whose slot s holds position s (or no cache: slot t holds new token t) lets the
        # native kernel apply the causal rule from positions alone: query at p sees slots 0..p.
        by_position = cache is None or getattr(cache, "slot_is_position", False)
        limits = positions if cache is not None else torch.arange(T).expand(B, T)
        attend = getattr(cache, "attend", None)
        gemm = self.prefill_dtype == torch.bfloat16 and T >= PREFILL_GEMM_MIN_TOKENS

        def mm(w: LinearWeight | SplitWeight, h: torch.Tensor) -> torch.Tensor:
            return w.gemm_bf16(h) if gemm else w.matmul(h)

        x = self.tok_emb.rows(tokens)  # (B, T, D)
        fused = None if gemm or cache is None else self._fused_layers(x, positions, cache)
        x = x if fused is None else fused
        for i, layer in enumerate(self.layers if fused is None else ()):
            h = kernels.rms_norm(x, layer.attn_norm, eps)
            qkv = mm(layer.wqkv, h)  # (B, T, (H + 2K) * E)
            kernels.rope_(qkv, positions, self.rope_cos, self.rope_sin, H + K, E)
            q = qkv[..., : H * E].view(B, T, H, E).transpose(1, 2)  # (B, H, T, E)
            k = qkv[..., H * E : (H + K) * E].view(B, T, K, E).transpose(1, 2)  # (B, K, T, E)
            v = qkv[..., (H + K) * E :].view(B, T, K, E).transpose(1, 2)  # (B, K, T, E)
            if attend is not None:  # a paged cache attends straight from its blocks
                y = attend(i, q, k, v, positions)  # (B, T, H, E)
            else:
                mask = None
                if cache is not None:
                    k, v, mask = cache.update(i, k, v, positions)  # (B, K, S, E) each
                if by_position:
                    y = kernels.attention(q, k, v, limits)  # (B, T, H, E)
                else:
                    y = _sdpa(q, k, v, mask)  # (B, T, H, E)
            x = x + mm(layer.wo, y.reshape(B, T, H * E))
            h = kernels.rms_norm(x, layer.ffn_norm, eps)
            if layer.ffn is not None:
                x = x + layer.ffn(h).float()
            else:
                x = x + mm(layer.w_down, kernels.silu_mul(mm(layer.w_gate_up, h)))  # via (B, T, 2F)
        if logits_at is not None:
            x = x[torch.arange(B), logits_at].unsqueeze(1)  # (B, 1, D)
        elif last_only:
            x = x[:, -1:]  # (B, 1, D)
        return self.lm_head.matmul(kernels.rms_norm(x, self.norm, eps))  # (B, T, V)

    __call__ = forward

    def _fused_layers(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCacheLike) -> torch.Tensor | None:
        """x (B, T, D) after every layer in one native call, or None to run the loop op by op."""
        if not self.fuse_decode:
            return None
        if self._fused is None and kernels.native_kernels() is not None:
            self._fused = FusedLayers.for_model(self) or False
        return self._fused.run(x, positions, cache) if self._fused else None


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """SDPA for caches with their own mask; mask None means causal with the last query seeing every key."""
    T, S = q.shape[2], k.shape[2]
    gqa = k.shape[1] != q.shape[1]
    k, v = k.to(q.dtype), v.to(q.dtype)
    if mask is None and T > 1 and S != T:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)  # (T, S)
    if mask is None:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=gqa)
    else:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
    return y.transpose(1, 2)  # (B, T, H, E)
