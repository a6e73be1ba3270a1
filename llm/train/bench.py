"""`llm bench train` and `llm bench matmul`: training throughput and the machine's matmul peak.

The training benchmark runs the real optimizer step of the training loop (`TrainLoop.
train_step`: autocast, fused AdamW, clipping, the summed cross-entropy) on random token
batches, so what it measures is what `llm train pretrain` gets, minus data loading and
logging. It reports the median and the best of several timed rounds because a shared
machine makes single timings noisy; the load average is reported next to them.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import torch

from llm.train.config import load_train_config
from llm.train.distributed import setup_distributed
from llm.train.flops import flops_per_token, load_matmul_peak, measure_matmul_peak, save_matmul_peak
from llm.train.loop import TrainLoop
from llm.train.pretrain import TokenBatch, lm_loss_sum

__all__ = ["bench_train", "bench_matmul", "DEFAULT_BENCH_PRESET"]

DEFAULT_BENCH_PRESET = "nanogpt-shape"


def bench_matmul(threads: int | None = None) -> dict[str, Any]:
    """Measure and cache the best fp32/bf16 matmul GFLOP/s (the MFU denominator)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    gflops = measure_matmul_peak()
    save_matmul_peak(gflops)
    return {"threads": torch.get_num_threads(), "gflops": gflops, "load_avg_1m": os.getloadavg()[0]}


def bench_train(
    preset: str = DEFAULT_BENCH_PRESET,
    precision: str = "fp32",
    batch_size: int = 8,
    seq_len: int = 256,
    steps: int = 5,
    rounds: int = 3,
    warmup: int = 2,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Tokens per second of full training steps (forward, backward, clip, AdamW) at one shape."""
    cfg = load_train_config(
        None,
        [
            f"model.preset={preset}",
            f"train.precision={precision}",
            f"train.batch_size={batch_size}",
            f"train.seq_len={seq_len}",
            f"train.max_steps={warmup + steps * rounds}",
            "train.warmup_steps=0",
            "train.device=cpu",
            *(overrides or []),
        ],
    )
    model_cfg = cfg.model.build()
    dist = setup_distributed(cfg.train.device, cfg.train.threads)
    torch.manual_seed(0)
    from llm.model import GPT

    model = GPT(model_cfg)
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, model_cfg.vocab_size, (64, seq_len + 1), generator=g)  # (64, T+1) random tokens

    def batches(first: int, size: int) -> TokenBatch:
        rows = data[torch.arange(first, first + size) % len(data)]  # (B, T+1)
        return TokenBatch(rows[:, :-1], rows[:, 1:])

    fpt = flops_per_token(model_cfg, seq_len)
    loop = TrainLoop(
        cfg,
        model,
        model_cfg,
        None,
        batches,
        lm_loss_sum,
        lambda m: {},
        dist,
        None,
        "bench",
        total_steps=cfg.train.max_steps,
        tokens_per_sample=seq_len,
        summary_fields={},
        flops_per_token=fpt,
        peak_flops=None,
    )
    load = os.getloadavg()[0]
    for _ in range(warmup):
        loop.train_step()
        loop.stats.samples += batch_size
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            loop.train_step()
            loop.stats.samples += batch_size
        rates.append(steps * batch_size * seq_len / (time.perf_counter() - t0))
    peak = load_matmul_peak(precision)
    median, best = statistics.median(rates), max(rates)
    return {
        "preset": preset,
        "precision": precision,
        "params": model_cfg.num_params(),
        "batch_size": batch_size,
        "seq_len": seq_len,
        "threads": torch.get_num_threads(),
        "tok_per_s": median,
        "tok_per_s_best": best,
        "tok_per_s_rounds": rates,
        "model_flops_per_token": fpt,
        "gflops_per_s": median * fpt / 1e9,
        "mfu": median * fpt / peak if peak else None,
        "matmul_peak_gflops": peak / 1e9 if peak else None,
        "load_avg_1m": load,
    }
