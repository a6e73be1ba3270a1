"""This machine's measured matmul peak: the denominator of training MFU and of prefill efficiency.

`llm bench matmul` measures the best GFLOP/s of large square matmuls per dtype (best of
several runs) and caches it in $LLM_HOME/bench/matmul.json, keyed by machine and torch
version: an honest denominator on a CPU, where the datasheet peak is rarely reachable.
Training (`llm.train`) and inference benchmarks (`llm.infer.bench`) both read it, so it
lives in neither. Knows torch matmuls and one JSON file; nothing about models.
"""

from __future__ import annotations

import json
import os
import platform
import time

import torch

from llm.atomic import atomic_write_text
from llm.hub import llm_home

__all__ = ["measure_matmul_peak", "load_matmul_peak", "save_matmul_peak", "peak_file"]


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
