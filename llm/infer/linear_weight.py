"""Weight matrices in the formats inference reads: float (fp32/bf16), int8 and packed int4.

A `LinearWeight` is an (N, K) matrix used as x @ W^T (`matmul`) or as an embedding table
(`rows`); `gemm_bf16` multiplies many rows at once (a prompt chunk) as one bfloat16 GEMM,
with a bf16 copy of the matrix made at first use (bf16 matrices are used as they are). The three formats share one small interface so the inference model can fuse
projections (`concat`), reorder output rows (`select_rows`) and save/load them by name:

    FloatWeight  w (N, K) float32 or bfloat16
    Int8Weight   q (N, K) int8, scale (N, K/G) float16          w = q * scale
    Int4Weight   p (N, K/2) uint8, scale, min (N, K/G) float16  w = q * scale + min, q in 0..15

G is the group size: K for int8 per output channel, or 32/64/128. With G = 32 the bytes are
those of GGUF's Q8_0 / Q4_1 blocks, so GGUF weights load without requantizing. State-dict
names add a suffix to the parameter's name: `<name>.weight` (float), `<name>.weight_q8` +
`.weight_scale` (int8), `<name>.weight_q4` + `.weight_scale` + `.weight_min` (int4).

This module knows formats and matmuls; how to choose quantization parameters lives in
`llm.infer.quantize`.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from llm.errors import CheckpointError
from llm.infer import kernels

__all__ = ["LinearWeight", "FloatWeight", "Int8Weight", "Int4Weight", "weight_from_state", "QUANT_SUFFIXES"]

# Suffixes that mark a quantized tensor in a state dict.
QUANT_SUFFIXES = (".weight_q8", ".weight_q4")


class LinearWeight(Protocol):
    shape: tuple[int, int]

    def matmul(self, x: torch.Tensor) -> torch.Tensor: ...  # (..., K) -> (..., N) float32
    def gemm_bf16(self, x: torch.Tensor) -> torch.Tensor: ...  # the same through a bf16 GEMM
    def rows(self, ids: torch.Tensor) -> torch.Tensor: ...  # (...) -> (..., K) float32
    def dequantize(self) -> torch.Tensor: ...  # (N, K) float32
    def select_rows(self, index: torch.Tensor) -> "LinearWeight": ...
    def state(self, name: str) -> dict[str, torch.Tensor]: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def kind(self) -> str: ...


class _Bf16Copy:
    """`gemm_bf16` for any format: the matrix dequantized to bfloat16 once, kept for later chunks."""

    _bf16: torch.Tensor | None = None

    def gemm_bf16(self, x: torch.Tensor) -> torch.Tensor:
        if self._bf16 is None:
            self._bf16 = self.dequantize().to(torch.bfloat16).contiguous()
        return kernels.linear_bf16_gemm(x, self._bf16)


class FloatWeight(_Bf16Copy):
    """A plain float32 or bfloat16 matrix; bf16 halves the bytes a decode step reads."""

    def __init__(self, w: torch.Tensor) -> None:
        assert w.dim() == 2 and w.dtype in (torch.float32, torch.bfloat16), (w.shape, w.dtype)
        self.w = w.contiguous()
        self.shape = (w.shape[0], w.shape[1])

    @property
    def kind(self) -> str:
        return "fp32" if self.w.dtype == torch.float32 else "bf16"

    @property
    def nbytes(self) -> int:
        return self.w.numel() * self.w.element_size()

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.linear_float(x, self.w)

    def gemm_bf16(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.linear_bf16_gemm(x, self.w) if self.w.dtype == torch.bfloat16 else super().gemm_bf16(x)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.w).float()

    def dequantize(self) -> torch.Tensor:
        return self.w.float()

    def select_rows(self, index: torch.Tensor) -> "FloatWeight":
        return FloatWeight(self.w[index])

    def state(self, name: str) -> dict[str, torch.Tensor]:
        return {f"{name}.weight": self.w}

    @staticmethod
    def concat(parts: list["FloatWeight"]) -> "FloatWeight":
        return FloatWeight(torch.cat([p.w for p in parts]))


class Int8Weight(_Bf16Copy):
    """int8 weights with a float16 scale per group of G columns (G = K: one scale per output row)."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor) -> None:
        _check_groups(q.shape[0], q.shape[1], scale, "int8")
        assert q.dtype == torch.int8 and scale.dtype == torch.float16
        self.q, self.scale = q.contiguous(), scale.contiguous()
        self.shape = (q.shape[0], q.shape[1])

    @property
    def group_size(self) -> int:
        return self.shape[1] // self.scale.shape[1]

    @property
    def kind(self) -> str:
        return "int8" if self.scale.shape[1] == 1 else f"int8/g{self.group_size}"

    @property
    def nbytes(self) -> int:
        return self.q.numel() + self.scale.numel() * 2

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.linear_int8(x, self.q, self.scale)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        w = kernels.dequantize_int8(self.q[flat], self.scale[flat])  # (n, K)
        return w.view(*ids.shape, self.shape[1])

    def dequantize(self) -> torch.Tensor:
        return kernels.dequantize_int8(self.q, self.scale)

    def select_rows(self, index: torch.Tensor) -> "Int8Weight":
        return Int8Weight(self.q[index], self.scale[index])

    def state(self, name: str) -> dict[str, torch.Tensor]:
        return {f"{name}.weight_q8": self.q, f"{name}.weight_scale": self.scale}

    @staticmethod
    def concat(parts: list["Int8Weight"]) -> "Int8Weight":
        return Int8Weight(torch.cat([p.q for p in parts]), torch.cat([p.scale for p in parts]))


class Int4Weight(_Bf16Copy):
    """4-bit weights, two per byte, with a float16 scale and min per group of G columns."""

    def __init__(self, p: torch.Tensor, scale: torch.Tensor, minv: torch.Tensor) -> None:
        _check_groups(p.shape[0], p.shape[1] * 2, scale, "int4")
        assert p.dtype == torch.uint8 and scale.dtype == torch.float16 and minv.shape == scale.shape
        G = p.shape[1] * 2 // scale.shape[1]
        if G % 32 or G & (G - 1):
            raise CheckpointError(f"int4 group size must be a power of two >= 32, got {G}")
        self.p, self.scale, self.min = p.contiguous(), scale.contiguous(), minv.to(torch.float16).contiguous()
        self.shape = (p.shape[0], p.shape[1] * 2)

    @property
    def group_size(self) -> int:
        return self.shape[1] // self.scale.shape[1]

    @property
    def kind(self) -> str:
        return f"int4/g{self.group_size}"

    @property
    def nbytes(self) -> int:
        return self.p.numel() + self.scale.numel() * 4

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.linear_int4(x, self.p, self.scale, self.min)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        w = kernels.dequantize_int4(self.p[flat], self.scale[flat], self.min[flat])  # (n, K)
        return w.view(*ids.shape, self.shape[1])

    def dequantize(self) -> torch.Tensor:
        return kernels.dequantize_int4(self.p, self.scale, self.min)

    def select_rows(self, index: torch.Tensor) -> "Int4Weight":
        return Int4Weight(self.p[index], self.scale[index], self.min[index])

    def state(self, name: str) -> dict[str, torch.Tensor]:
        return {f"{name}.weight_q4": self.p, f"{name}.weight_scale": self.scale, f"{name}.weight_min": self.min}

    @staticmethod
    def concat(parts: list["Int4Weight"]) -> "Int4Weight":
        return Int4Weight(*(torch.cat([getattr(p, a) for p in parts]) for a in ("p", "scale", "min")))


def _check_groups(N: int, K: int, scale: torch.Tensor, fmt: str) -> None:
    if scale.dim() != 2 or scale.shape[0] != N or scale.shape[1] < 1 or K % scale.shape[1]:
        raise CheckpointError(
            f"{fmt} scales of shape {tuple(scale.shape)} do not fit a ({N}, {K}) weight: expected ({N}, K/group)"
        )


def weight_from_state(name: str, state: dict[str, torch.Tensor]) -> LinearWeight | None:
    """The weight called `name` in a state dict, in whichever format it was saved; None if absent."""
    try:
        if f"{name}.weight_q8" in state:
            return Int8Weight(state[f"{name}.weight_q8"], state[f"{name}.weight_scale"])
        if f"{name}.weight_q4" in state:
            return Int4Weight(state[f"{name}.weight_q4"], state[f"{name}.weight_scale"], state[f"{name}.weight_min"])
    except KeyError as exc:
        raise CheckpointError(f"quantized weight {name} is missing its tensor {exc}") from exc
    w = state.get(f"{name}.weight")
    return None if w is None else FloatWeight(w if w.dtype in (torch.float32, torch.bfloat16) else w.float())
