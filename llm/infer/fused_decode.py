"""Decoding steps with every layer in one native call (`csrc/fused_decode.cpp`).

A decoding step (one token per row, or a speculative check of a few) reads each weight once,
so with int8/int4 weights it should be bound by those bytes; run op by op from Python it was
bound by the ~40 small PyTorch calls per layer around the matmuls instead. `FusedLayers`
hands the model's layers to the native `DecodeLayers` once, and `run` does RMSNorm, QKV,
RoPE, the cache write, attention, the output projection and SwiGLU of all layers in one
call. Each op is the same native function the per-op path calls, so the result is
bit-identical to `InferenceModel.forward` op by op, which stays the readable path (and
`kernels.force_reference()` the PyTorch one).

It runs for both caches inference uses, addressed by a block table: the engine's static
`KVCache` (one block of `capacity` slots per row) and the server's `PagedBatch` (its
sequences' block tables). It declines (returns None, the caller goes op by op) for prompt
chunks, caches it cannot address, layers it cannot fuse (a mixture-of-experts FFN, Q/K/V or
gate/up in different formats) and when the native kernels are not available.

Tensor letters: B batch, T new tokens, D model width, K kv heads, E head dim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from llm.errors import InferenceError
from llm.infer import kernels
from llm.infer.kv_cache import KVCache
from llm.infer.linear_weight import FloatWeight, Int4Weight, Int8Weight
from llm.infer.paged_kv import PagedBatch

if TYPE_CHECKING:
    from llm.infer.inference_model import InferenceModel

__all__ = ["FusedLayers"]


def _tensors(w: Any, ext: Any) -> list[torch.Tensor] | None:
    """A matrix as the tensors the native stack takes ([w], [q, scale], [p, scale, min]); None if it cannot."""
    if isinstance(w, FloatWeight):
        return [w.w]
    if isinstance(w, Int8Weight) and kernels._int8_native_ok(w.shape[1], w.scale.shape[1]):
        return [w.q, w.scale]
    if isinstance(w, Int4Weight) and w.shape[1] % ext.int4_row_multiple() == 0:
        return [w.p, w.scale, w.min]
    return None


class FusedLayers:
    """The native layer stack of one `InferenceModel`; build it with `for_model`."""

    def __init__(self, native: Any) -> None:
        self.native = native
        self.steps = 0  # steps run fused (tests and benchmarks read it)

    @classmethod
    def for_model(cls, model: "InferenceModel") -> "FusedLayers | None":
        """The stack, or None when a layer cannot be fused or the extension is not built."""
        ext = kernels.native_kernels()
        if ext is None or not hasattr(ext, "DecodeLayers"):
            return None
        cfg = model.config
        parts = []
        for layer in model.layers:
            mats = [_tensors(m, ext) for m in (layer.wqkv, layer.wo, layer.w_gate_up, layer.w_down)]
            if layer.ffn is not None or any(m is None for m in mats):
                return None
            parts.append((layer.attn_norm, mats[0], mats[1], layer.ffn_norm, mats[2], mats[3]))
        native = ext.DecodeLayers(cfg.n_heads, cfg.kv_heads, cfg.head_dim, cfg.norm_eps, model.rope_cos, model.rope_sin)
        for p in parts:
            native.add_layer(*p)
        return cls(native)

    def run(self, x: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor | None:
        """x (B, T, D) after all layers, writing the new keys/values into `cache`; None if it does not apply."""
        B, T, _ = x.shape
        if T > kernels.NATIVE_ATTENTION_MAX_QUERIES or B * T > kernels.NATIVE_MAX_ROWS or kernels.native_kernels() is None:
            return None
        positions = positions.to(torch.long)
        if isinstance(cache, KVCache):
            view = _static_view(cache, B, positions)
        elif isinstance(cache, PagedBatch):
            view = _paged_view(cache, positions)
        else:
            return None
        if view is None:
            return None
        y = self.native.forward(x, positions, *view)
        if isinstance(cache, KVCache):
            cache.length = int(positions.max()) + 1  # as KVCache.update leaves it
        self.steps += 1
        return y


def _static_view(cache: KVCache, B: int, positions: torch.Tensor) -> tuple | None:
    """KVCache (L, B, K, S, E) as a block table: row b is one block of S slots."""
    k = cache.k
    if k.dtype != torch.float32 or not k.is_contiguous() or B > cache.batch:
        return None
    lo, hi = int(positions.min()), int(positions.max())
    if hi >= cache.capacity or lo < 0:
        raise InferenceError(f"KV cache positions must lie in 0..{cache.capacity - 1}, got up to {hi}")
    blocks = torch.arange(B, dtype=torch.long).unsqueeze(1)  # (B, 1)
    return k, cache.v, blocks, cache.capacity, k.stride(1), k.stride(3), k.stride(2)


def _paged_view(batch: PagedBatch, positions: torch.Tensor) -> tuple | None:
    """The paged pool (L, blocks, block size, K, E) with the rows' block tables, padded with -1."""
    pool = batch.cache
    k = pool.k
    if k.dtype != torch.float32 or k.device.type != "cpu":
        return None
    bs = pool.block_size
    need = (positions.max(dim=1).values // bs + 1).tolist()  # blocks each row reads
    n = max(need)
    rows = []
    for b, sid in enumerate(batch.seq_ids):
        table = pool.tables[sid]
        assert need[b] <= len(table), f"sequence {sid} reaches block {need[b] - 1} but owns {len(table)} blocks"
        row = table[:n]
        rows.append(row + [-1] * (n - len(row)))
    K, E = k.shape[3], k.shape[4]
    return k, pool.v, torch.tensor(rows, dtype=torch.long), bs, bs * K * E, K * E, E
