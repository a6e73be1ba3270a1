"""Learning-rate schedules as pure functions of the step, so resuming needs no scheduler state.

- cosine: linear warmup, then cosine decay to `lr * min_lr_ratio` (Loshchilov & Hutter 2017).
- wsd: warmup-stable-decay: linear warmup, constant, then a linear decay over the last
  `decay_fraction` of the steps (Hu et al. 2024, "MiniCPM", section 4).
- constant: linear warmup, then constant.
"""

from __future__ import annotations

import math

from llm.train.config import TrainSection

__all__ = ["lr_at"]


def lr_at(step: int, total_steps: int, cfg: TrainSection) -> float:
    """Learning rate for optimizer step `step` (0-based) of a run of `total_steps`."""
    peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if step < warmup:
        return peak * (step + 1) / warmup
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "cosine":
        span = max(total_steps - warmup, 1)
        progress = min((step - warmup) / span, 1.0)
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_steps = max(1, round(total_steps * cfg.decay_fraction))
    decay_start = max(total_steps - decay_steps, warmup)
    if step < decay_start:
        return peak
    progress = min((step - decay_start + 1) / max(total_steps - decay_start, 1), 1.0)
    return peak + (floor - peak) * progress
