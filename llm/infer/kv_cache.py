"""Preallocated (static) KV cache: one tensor per layer, written in place, never concatenated.

The cache knows nothing about the model's weights; attention hands it keys/values and the
positions they belong to, and gets back the prefix to attend over.

Tensor letters: L layers, B batch, K kv heads, S capacity, T new tokens, E head dim.
"""

from __future__ import annotations

import torch

__all__ = ["KVCache"]


class KVCache:
    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_kv_heads: int,
        capacity: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (n_layers, batch, n_kv_heads, capacity, head_dim)  # (L, B, K, S, E)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.capacity = capacity
        self.length = 0  # tokens stored so far (all sequences advance together)

    @classmethod
    def for_model(cls, model: torch.nn.Module, batch: int = 1, capacity: int | None = None) -> "KVCache":
        cfg = model.config
        p = next(model.parameters())
        return cls(cfg.n_layers, batch, cfg.kv_heads, capacity or cfg.max_seq_len, cfg.head_dim, p.dtype, p.device)

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None]:
        # positions are contiguous and shared by the batch: (T,) or (B, T) with equal rows.
        start = int(positions.reshape(-1)[0])
        end = start + k.shape[2]
        assert end <= self.capacity, f"KV cache overflow: {end} > {self.capacity}"
        self.k[layer, :, :, start:end] = k  # (B, K, T, E)
        self.v[layer, :, :, start:end] = v
        if layer == self.k.shape[0] - 1:
            self.length = end
        # Queries sit at the last T of these S = end keys: attention applies a bottom-right causal mask.
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end], None

    def reset(self) -> None:
        self.length = 0
