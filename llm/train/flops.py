"""Model FLOPs per token and this machine's measured matmul peak, for MFU.

FLOPs per trained token (forward + backward) = 6 * N_matmul + 12 * L * D * T, where
N_matmul counts the parameters used in matrix multiplies (the lm_head counts, a token
embedding lookup does not unless it is tied to the lm_head) and the second term is
attention's QK^T and AV (PaLM, Chowdhery et al. 2022, appendix B). This is the same count
nanoGPT's `estimate_mfu` uses, so the two compare.

The peak is what `llm bench matmul` measured on this machine (large square matmuls, best
of several runs), cached in $LLM_HOME/bench/matmul.json: an honest denominator on a CPU,
where the datasheet peak is rarely reachable.
"""

from __future__ import annotations

import json
import os
import platform
import time

import torch

from llm.checkpoint import atomic_write_text
from llm.config import ModelConfig
from llm.hub import llm_home

__all__ = ["flops_per_token", "measure_matmul_peak", "load_matmul_peak", "save_matmul_peak", "peak_file"]


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    n = cfg.num_params()
    if not cfg.tie_embeddings:
        n -= cfg.vocab_size * cfg.d_model  # the untied input embedding is a lookup, not a matmul
    return 6.0 * n + 12.0 * cfg.n_layers * cfg.d_model * seq_len


def peak_file():
    return llm_home() / "bench" / "matmul.json"


def _machine() -> str:
    return f"{platform.machine()}-{platform.processor() or 'cpu'}-{os.cpu_count()}cores-torch{torch.__version__}"


def measure_matmul_peak(
    sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 5, seconds: float = 0.5, threads: int | None = None
) -> dict[str, float]:
    """Best achieved matmul GFLOP/s per dtype (float32, bfloat16) on the CPU."""
    if threads:
        torch.set_num_threads(threads)
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        best = 0.0
        for n in sizes:
            a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
            a @ b  # warm-up: thread pool and kernel selection
            per = max(1, int(seconds * 1e11 / (2 * n**3)))  # ~`seconds` at 100 GFLOP/s
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(per):
                    a @ b
                best = max(best, 2 * n**3 * per / (time.perf_counter() - t0))
        out[name] = best / 1e9
    return out


def save_matmul_peak(gflops: dict[str, float]) -> None:
    f = peak_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    doc = {"machine": _machine(), "threads": torch.get_num_threads(), "gflops": gflops, "measured_at": time.time()}
    atomic_write_text(f, json.dumps(doc, indent=2))


def load_matmul_peak(precision: str) -> float | None:
    """Peak FLOP/s for "fp32"/"bf16" from the cache, or None when `llm bench matmul` has not run here."""
    f = peak_file()
    if not f.exists():
        return None
    try:
        doc = json.loads(f.read_text())
    except json.JSONDecodeError:
        return None
    if doc.get("machine") != _machine():
        return None
    value = doc.get("gflops", {}).get("bfloat16" if precision == "bf16" else "float32")
    return float(value) * 1e9 if value else None
