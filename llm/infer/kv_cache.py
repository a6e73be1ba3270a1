"""Preallocated (static) KV cache: one tensor per layer, written in place, never concatenated.

Row b of the cache belongs to row b of the batch. Rows may sit at different positions (a
batch of prompts of different lengths): a token at position p is written to slot p of its
row, and a query at position p attends to slots 0..p of its row. Slots past a row's current
position may hold stale values (padding, rejected speculative tokens); the causal rule
never lets a query see them, and they are overwritten when the row gets there, so rolling
back is free.

The cache knows nothing about the model's weights; attention hands it keys/values and the
positions they belong to (the model's `KVCacheLike` protocol), and gets back the keys and
values to attend over plus a mask, or None when plain bottom-right causal attention is right.

Tensor letters: L layers, B batch, K kv heads, S capacity, T new tokens, E head dim.
"""

from __future__ import annotations

import torch

from llm.errors import InferenceError

__all__ = ["KVCache"]


class KVCache:
    # Slot s of a row holds position s: attention may derive the causal mask from positions.
    slot_is_position = True

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
        self.n_layers = n_layers
        self.capacity = capacity
        self.length = 0  # one past the highest position written by the last forward pass
        self._plan_for: torch.Tensor | None = None
        self._plan: tuple[int, int, torch.Tensor | None, torch.Tensor | None] = (0, 0, None, None)

    @classmethod
    def for_model(
        cls, model: torch.nn.Module, batch: int = 1, capacity: int | None = None, dtype: torch.dtype | None = None
    ) -> "KVCache":
        cfg = model.config
        capacity = capacity or cfg.max_seq_len
        if capacity > cfg.max_seq_len:
            raise InferenceError(f"a KV cache of {capacity} positions exceeds the model's maximum context {cfg.max_seq_len}")
        ref = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
        device = ref.device if ref is not None else "cpu"
        if dtype is None:
            dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        return cls(cfg.n_layers, batch, cfg.kv_heads, capacity, cfg.head_dim, dtype, device)

    @property
    def batch(self) -> int:
        return self.k.shape[1]

    def _make_plan(self, positions: torch.Tensor, B: int, T: int) -> None:
        """Once per forward pass: where the new tokens go and which mask attention needs."""
        pos = positions if positions.dim() == 2 else positions.unsqueeze(0)  # (B or 1, T)
        start = int(pos[0, 0])
        aligned = pos.shape[0] == 1 or bool((pos == pos[:1]).all())
        contiguous = aligned and (T == 1 or bool((pos[0] == torch.arange(start, start + T, device=pos.device)).all()))
        if contiguous:
            end = start + T
            self._plan = (start, end, None, None)
        else:
            pos = pos.expand(B, T)
            end = int(pos.max()) + 1
            keys = torch.arange(end, device=pos.device)
            mask = (keys <= pos.unsqueeze(-1)).unsqueeze(1)  # (B, 1, T, S): key s visible to query at p iff s <= p
            self._plan = (start, end, pos, mask)
        if end > self.capacity or int(pos.min()) < 0:
            raise InferenceError(f"KV cache positions must lie in 0..{self.capacity - 1}, got up to {end - 1}")
        self._plan_for = positions

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Store k/v (B, K, T, E) at `positions` ((T,) shared or (B, T) per row); return keys/values 0..S-1."""
        B, _, T, _ = k.shape
        assert B <= self.batch, f"batch {B} > cache rows {self.batch}"
        if layer == 0 or positions is not self._plan_for:
            self._make_plan(positions, B, T)
        start, end, pos, mask = self._plan
        if pos is None:
            self.k[layer, :B, :, start:end] = k
            self.v[layer, :B, :, start:end] = v
        else:
            rows = torch.arange(B, device=k.device).unsqueeze(1)  # (B, 1)
            self.k[layer, rows, :, pos] = k.transpose(1, 2).to(self.k.dtype)  # indexed view is (B, T, K, E)
            self.v[layer, rows, :, pos] = v.transpose(1, 2).to(self.v.dtype)
        if layer == self.n_layers - 1:
            self.length = end
        return self.k[layer, :B, :, :end], self.v[layer, :B, :, :end], mask

    def reset(self) -> None:
        self.length = 0
        self._plan_for = None
