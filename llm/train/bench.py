"""`llm bench train` and `llm bench matmul`: training throughput and the machine's matmul peak.

The training benchmark runs the real optimizer step of the training loop (`TrainLoop.
train_step`: autocast, fused AdamW, clipping, the summed cross-entropy) on random token
batches, so what it measures is what `llm train pretrain` gets, minus data loading and
logging. It reports the median and the best of several timed rounds because a shared
machine makes single timings noisy; the load average is reported next to them.

`nanogpt=DIR` times nanoGPT's `model.py` (a checkout the user points at; nothing of it is
shipped here) in the same process, on the same token batches, shape, threads and autocast,
with the step its `train.py` takes (forward, backward, clip 1.0, the AdamW its
`configure_optimizers` builds, zero_grad), and again with the fused AdamW ours uses, so the
optimizer's share of the difference is visible. Rounds alternate between the models so a
change in machine load hits both.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llm.errors import ConfigError
from llm.train.config import load_train_config
from llm.train.distributed import setup_distributed
from llm.train.flops import (
    flops_per_token,
    load_matmul_peak,
    measure_matmul_peak,
    save_matmul_peak,
)
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
    nanogpt: Path | None = None,
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
    def ours() -> None:
        loop.train_step()
        loop.stats.samples += batch_size

    contenders: dict[str, Callable[[], None]] = {"llm": ours}
    if nanogpt is not None:
        rows = data[:batch_size]  # (B, T+1): the batch our first step trains on
        for name, fused in (("nanogpt", False), ("nanogpt_fused_adamw", True)):
            contenders[name] = _nanogpt_step(nanogpt, model_cfg, seq_len, loop._autocast, rows, fused)
    load = os.getloadavg()[0]
    for step in contenders.values():
        for _ in range(warmup):
            step()
    all_rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            all_rates[name].append(steps * batch_size * seq_len / (time.perf_counter() - t0))
    peak = load_matmul_peak(precision)
    rates = all_rates.pop("llm")
    median, best = statistics.median(rates), max(rates)
    peers = {
        name: {
            "tok_per_s": statistics.median(r),
            "tok_per_s_best": max(r),
            "tok_per_s_rounds": r,
            "mfu": statistics.median(r) * fpt / peak if peak else None,
            "llm_speedup": median / statistics.median(r),
        }
        for name, r in all_rates.items()
    }
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
        "load_avg_1m_end": os.getloadavg()[0],
        **({"peers": peers} if peers else {}),
    }


def _nanogpt_step(
    checkout: Path, cfg, seq_len: int, autocast: Callable, rows: torch.Tensor, fused: bool
) -> Callable[[], None]:
    """One training step of nanoGPT's model.py at our shape, as its train.py takes it (eager)."""
    source = Path(checkout) / "model.py"
    if not source.is_file():
        raise ConfigError(f"--vs-nanogpt {checkout}: no model.py there; point it at a nanoGPT checkout")
    spec = importlib.util.spec_from_file_location("nanogpt_model", source)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count and AdamW choice
        spec.loader.exec_module(module)
        conf = module.GPTConfig(block_size=seq_len, vocab_size=cfg.vocab_size, n_layer=cfg.n_layers,
                                n_head=cfg.n_heads, n_embd=cfg.d_model, dropout=0.0, bias=False)
        torch.manual_seed(0)
        model = module.GPT(conf)
        # Its configure_optimizers picks the fused kernel on CUDA only; `fused` swaps in ours for comparison.
        opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cuda" if fused else "cpu")
    x, y = rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def step() -> None:
        with autocast():
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # one host sync per step, as ours

    return step
