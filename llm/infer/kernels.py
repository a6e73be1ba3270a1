"""Kernels of a decoding step: a native C++ extension, and the PyTorch reference of each op.

`linear_float`, `linear_int8` and `linear_int4` compute x @ W^T for the weight formats of
`llm.infer.linear_weight` (layouts in `csrc/gemv.cpp`); `rms_norm`, `silu_mul`, `rope_` and
`attention` are the small per-layer ops (`csrc/decode_ops.cpp`). For a few rows of x
(decoding, speculative verification, small batches) they run native code, compiled with
`torch.utils.cpp_extension` at first use for the instruction set this CPU has (AVX-512 /
VNNI / AVX2 / scalar) and cached under `$LLM_HOME/kernels/`. For many rows (prefill,
perplexity) or when the extension cannot be built they run plain PyTorch: always correct,
and compute-bound work where the stock GEMM and SDPA are good.

Why native code: PyTorch's own int8/int4 matmuls and its bf16 GEMV read weights at a
fraction of the memory bandwidth on small batches, so quantized decoding would be *slower*
than float without one; and a one-token step is dominated by per-op dispatch overhead.

`LLM_NATIVE_KERNELS=0` forces the PyTorch path. This module knows nothing about models.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Iterator

import torch
import torch.nn.functional as F

__all__ = [
    "NATIVE_MAX_ROWS",
    "NATIVE_ATTENTION_MAX_QUERIES",
    "native_kernels",
    "kernel_status",
    "force_reference",
    "linear_float",
    "linear_int8",
    "linear_int4",
    "linear_bf16_gemm",
    "dequantize_int8",
    "dequantize_int4",
    "unpack_int4",
    "rms_norm",
    "silu_mul",
    "rope_",
    "attention",
    "attention_paged",
]

log = logging.getLogger(__name__)

# Up to this many rows of x go to the native kernels; more rows are a GEMM, where dequantize +
# the stock float matmul catches up (measured on 2 AVX-512 cores: native is 1.5-2.5x faster
# up to 256 rows for float, int8 and int4 weights; the two break even near 1,024 rows).
NATIVE_MAX_ROWS = 256
# Up to this many queries per row, attention runs the native kernel (decoding, speculative
# checks); more (a prompt chunk) run SDPA's flash kernel, which tiles queries and keys: with 64
# queries over 2,000 keys it measured 1.5-4x the native kernel's GFLOP/s (2 AVX-512 cores),
# while below 16 queries the native kernel is faster.
NATIVE_ATTENTION_MAX_QUERIES = 16

_CSRC = Path(__file__).parent / "csrc"
_SOURCES = ("gemv.cpp", "decode_ops.cpp", "fused_decode.cpp", "bindings.cpp")
# -fopenmp: at::parallel_for is an OpenMP pragma in ATen's headers; compiled without it the
# kernels would run on one thread whatever torch.get_num_threads() says.
_CFLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]
_lock = threading.Lock()
_native: ModuleType | None = None
_native_error: str | None = None
_tried = False
_reference_only = False


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _build_dir() -> Path:
    """One cache entry per (source, torch version, CPU flags): a build never runs on a CPU it was not made for."""
    from llm.hub import llm_home

    digest = hashlib.sha256(torch.__version__.encode() + _cpu_flags().encode() + platform.machine().encode())
    digest.update(" ".join(_CFLAGS + _LDFLAGS).encode())
    for name in (*_SOURCES, "kernels.h"):
        digest.update((_CSRC / name).read_bytes())
    key = digest.hexdigest()[:16]
    return llm_home() / "kernels" / key


def _build() -> ModuleType:
    from torch.utils.cpp_extension import load

    if shutil.which("ninja") is None:
        raise RuntimeError("ninja is not installed")
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        raise RuntimeError("no C++ compiler found")
    build_dir = _build_dir()
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = [str(_CSRC / name) for name in _SOURCES]
    return load(
        name="llm_infer_kernels", sources=sources, extra_cflags=_CFLAGS, extra_ldflags=_LDFLAGS,
        build_directory=str(build_dir),
    )


def native_kernels() -> ModuleType | None:
    """The compiled extension, built on first call (about a minute) and cached; None if it cannot be built."""
    if _reference_only:
        return None
    if not _tried:
        _load_once()
    return _native


def _load_once() -> None:
    global _native, _native_error, _tried
    with _lock:
        if _tried:
            return
        if os.environ.get("LLM_NATIVE_KERNELS", "1") == "0":
            _native_error = "disabled by LLM_NATIVE_KERNELS=0"
        else:
            try:
                _native = _build()
            except (RuntimeError, OSError, ImportError, SystemExit) as exc:
                # NOTE: the build is an optimisation; every op has an exact PyTorch path below.
                _native_error = "native build failed: " + (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                log.warning("native kernels unavailable, using PyTorch: %s", _native_error)
        _tried = True


def kernel_status() -> str:
    """One line for benchmark tables: which kernels run."""
    ext = native_kernels()
    if ext is not None:
        return f"native ({ext.isa()})"
    if _reference_only:
        return "pytorch (reference forced)"
    return f"pytorch ({_native_error})"


@contextmanager
def force_reference() -> Iterator[None]:
    """Within this block every op takes the PyTorch path (tests compare the two)."""
    global _reference_only
    old, _reference_only = _reference_only, True
    try:
        yield
    finally:
        _reference_only = old


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """x (..., K) as a contiguous float32 (M, K) matrix, plus the leading shape to restore."""
    lead = tuple(x.shape[:-1])
    return x.reshape(-1, x.shape[-1]).float().contiguous(), lead


def _native_for(x2: torch.Tensor) -> ModuleType | None:
    return native_kernels() if x2.shape[0] <= NATIVE_MAX_ROWS else None


def linear_float(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (..., K) float @ w (N, K) float32 or bfloat16 -> (..., N) float32."""
    x2, lead = _rows(x)
    ext = _native_for(x2)
    if ext is not None:
        y = ext.gemv_bf16(x2, w) if w.dtype == torch.bfloat16 else ext.gemv_f32(x2, w)  # (M, N)
    else:
        y = F.linear(x2, w.float())
    return y.view(*lead, w.shape[0])


def linear_bf16_gemm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (..., K) @ w (N, K) bfloat16 -> (..., N) float32, as one bfloat16 GEMM (oneDNN: AMX / AVX512-BF16).

    For prompt chunks: many rows make the matmul compute-bound, where the bf16 units are
    several times faster than float32 FMAs. Inputs are rounded to bf16; products
    accumulate in float32.
    """
    x2, lead = _rows(x)
    return F.linear(x2.to(torch.bfloat16), w).float().view(*lead, w.shape[0])


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q (N, K) int8 with scale (N, K/G) float16 -> (N, K) float32."""
    N, K = q.shape
    groups = scale.shape[1]
    return (q.float().view(N, groups, K // groups) * scale.float().unsqueeze(-1)).view(N, K)


def _int8_native_ok(K: int, groups: int) -> bool:
    G = K // groups
    return groups == 1 or (G >= 32 and G & (G - 1) == 0)


def linear_int8(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (..., K) @ dequant(q, scale)^T -> (..., N) float32."""
    x2, lead = _rows(x)
    ext = _native_for(x2)
    if ext is not None and _int8_native_ok(q.shape[1], scale.shape[1]):
        y = ext.gemv_int8(x2, q, scale)
    else:
        y = F.linear(x2, dequantize_int8(q, scale))
    return y.view(*lead, q.shape[0])


def unpack_int4(p: torch.Tensor) -> torch.Tensor:
    """p (N, K/2) uint8 -> q (N, K) uint8 in 0..15: in each 16-byte block, byte i holds weights i and i+16."""
    N = p.shape[0]
    blocks = p.view(N, -1, 16)  # (N, K/32, 16)
    return torch.cat((blocks & 0xF, blocks >> 4), dim=-1).view(N, -1)  # (N, K)


def dequantize_int4(p: torch.Tensor, scale: torch.Tensor, minv: torch.Tensor) -> torch.Tensor:
    """p (N, K/2) uint8 with scale/min (N, K/G) float16 -> (N, K) float32; w = q * scale + min."""
    q = unpack_int4(p).float()
    N, K = q.shape
    groups = scale.shape[1]
    w = q.view(N, groups, K // groups) * scale.float().unsqueeze(-1) + minv.float().unsqueeze(-1)
    return w.view(N, K)


def linear_int4(x: torch.Tensor, p: torch.Tensor, scale: torch.Tensor, minv: torch.Tensor) -> torch.Tensor:
    """x (..., K) @ dequant(p, scale, min)^T -> (..., N) float32."""
    x2, lead = _rows(x)
    ext = _native_for(x2)
    if ext is not None and p.shape[1] * 2 % ext.int4_row_multiple() == 0:
        y = ext.gemv_int4(x2, p, scale, minv)
    else:
        y = F.linear(x2, dequantize_int4(p, scale, minv))
    return y.view(*lead, p.shape[0])


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x (..., D) / rms(x) * weight, in float32."""
    ext = native_kernels()
    if ext is not None and x.dtype == torch.float32:
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        return ext.rms_norm(x2, weight, eps).view(x.shape)
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """SwiGLU's silu(gate) * up for gate_up (..., 2F) = [gate | up] -> (..., F)."""
    ext = native_kernels()
    if ext is not None and gate_up.dtype == torch.float32:
        g2 = gate_up.reshape(-1, gate_up.shape[-1]).contiguous()
        return ext.silu_mul(g2).view(*gate_up.shape[:-1], gate_up.shape[-1] // 2)
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def rope_(qkv: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int, head_dim: int) -> None:
    """Rotate interleaved pairs of the first `n_heads` heads of qkv (B, T, C) in place.

    positions (B, T); cos/sin (max_len, E/2). RoFormer (Su et al. 2021) eq. 34.
    """
    ext = native_kernels()
    if ext is not None and qkv.dtype == torch.float32 and qkv.is_contiguous():
        ext.rope_(qkv, positions, cos, sin, n_heads, head_dim)
        return
    B, T, _ = qkv.shape
    x = qkv[..., : n_heads * head_dim].view(B, T, n_heads, head_dim // 2, 2)  # (B, T, h, E/2, 2)
    pos = positions.clamp(0, cos.shape[0] - 1)
    c, s = cos[pos].unsqueeze(2), sin[pos].unsqueeze(2)  # (B, T, 1, E/2)
    x0, x1 = x[..., 0].clone(), x[..., 1].clone()
    x[..., 0] = x0 * c - x1 * s
    x[..., 1] = x0 * s + x1 * c


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """Causal attention: q (B, H, T, E) over k/v (B, Kh, S, E); query (b, t) sees keys 0..limits[b, t].

    Returns (B, T, H, E). Kh may divide H (grouped-query attention, no K/V copies).
    """
    B, H, T, E = q.shape
    ext = native_kernels() if T <= NATIVE_ATTENTION_MAX_QUERIES else None
    if ext is not None and q.dtype == k.dtype == v.dtype == torch.float32:
        return ext.attention(q, k, v, limits)
    S = k.shape[2]
    k, v, gqa = k.to(q.dtype), v.to(q.dtype), k.shape[1] != H
    if S >= T and torch.equal(limits, torch.arange(T, device=q.device).expand(B, T)):
        # A whole prompt from position 0: plain causal attention over its own keys, which the
        # flash kernel computes tile by tile (no T x T scores per head, upper triangle skipped).
        y = F.scaled_dot_product_attention(q, k[:, :, :T], v[:, :, :T], is_causal=True, enable_gqa=gqa)
    else:
        mask = (torch.arange(S, device=q.device) <= limits.unsqueeze(-1)).unsqueeze(1)  # (B, 1, T, S)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
    return y.transpose(1, 2)  # (B, T, H, E)


def attention_paged(
    q: torch.Tensor, pool_k: torch.Tensor, pool_v: torch.Tensor, blocks: torch.Tensor, limits: torch.Tensor
) -> torch.Tensor | None:
    """`attention` reading K/V through a block table, without gathering them first.

    pool_k/pool_v (blocks, block size, Kh, E) float32, blocks (B, n) int64: key j of row b is
    slot j % block size of block blocks[b, j // block size]. Returns (B, T, H, E), or None when
    the native kernel does not apply (no extension, or more than `NATIVE_ATTENTION_MAX_QUERIES`
    queries per row): the caller then gathers and uses `attention`.
    """
    ext = native_kernels() if q.shape[2] <= NATIVE_ATTENTION_MAX_QUERIES else None
    if ext is None or not (q.dtype == pool_k.dtype == pool_v.dtype == torch.float32):
        return None
    return ext.attention_paged(q, pool_k, pool_v, blocks, limits)
