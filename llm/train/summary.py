"""Running statistics of a training run and the `summary.json` built from them.

`loss_at_<N>_tokens` is the smoothed training loss (bias-corrected exponential moving
average, beta 0.9, over steps) at the first step where N tokens had been seen, for N in
1, 2, 5 x 10^k. The smoothing keeps one noisy batch from deciding a milestone. All state
is plain numbers so it can be saved in train_state.pt and a resumed run reports the same
summary as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RunStats", "milestone_name", "token_milestones"]

_EMA_BETA = 0.9


def token_milestones(limit: int, start: int = 10_000) -> list[int]:
    """1, 2, 5 x 10^k from `start` up to `limit`."""
    out, base = [], start
    while base <= limit:
        out.extend(m for m in (base, 2 * base, 5 * base) if m <= limit)
        base *= 10
    return out


def milestone_name(tokens: int) -> str:
    return f"loss_at_{tokens}_tokens"


@dataclass
class RunStats:
    """Counters updated once per optimizer step (rank 0 holds the globally averaged values)."""

    step: int = 0
    samples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0  # time in optimizer steps only (no eval, no checkpoint writing)
    elapsed_seconds: float = 0.0  # wall time, summed over resumed segments
    ema: float = 0.0
    ema_weight: float = 0.0
    grad_norm_sum: float = 0.0
    grad_norm_count: int = 0
    milestones: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)

    def update(self, loss: float, grad_norm: float, samples: int, tokens: int, seconds: float) -> None:
        self.step += 1
        self.samples += samples
        before = self.tokens
        self.tokens += tokens
        self.train_seconds += seconds
        self.ema = _EMA_BETA * self.ema + (1 - _EMA_BETA) * loss
        self.ema_weight = _EMA_BETA * self.ema_weight + (1 - _EMA_BETA)
        if math.isfinite(grad_norm):
            self.grad_norm_sum += grad_norm
            self.grad_norm_count += 1
        for m in token_milestones(self.tokens):
            if m > before:
                self.milestones[milestone_name(m)] = self.smoothed_loss

    @property
    def smoothed_loss(self) -> float:
        return self.ema / self.ema_weight if self.ema_weight else float("nan")

    @property
    def throughput(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds else 0.0

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RunStats":
        return cls(**state)

    def summary(self, fixed: dict[str, Any], flops_per_token: float, peak_flops: float | None) -> dict[str, Any]:
        """`fixed` holds what the caller knows (model_size, dataset, lr_schedule, batch_size_tokens, ...)."""
        achieved = self.throughput * flops_per_token
        return {
            **fixed,
            "steps": self.step,
            "tokens": self.tokens,
            "final_train_loss": self.smoothed_loss,
            **self.milestones,
            "grad_norm_mean": self.grad_norm_sum / self.grad_norm_count if self.grad_norm_count else None,
            "throughput_tok_per_s": self.throughput,
            "throughput_tok_per_sec": self.throughput,  # the name the research questions use
            "model_flops_per_token": flops_per_token,
            "achieved_flops_per_s": achieved,
            "mfu": achieved / peak_flops if peak_flops else None,
            "matmul_peak_flops_per_s": peak_flops,
            "final_val_loss": self.last_eval.get("val_loss"),
            "final_val_bpb": self.last_eval.get("val_bpb"),
            "train_seconds": self.train_seconds,
            "elapsed_s": self.elapsed_seconds,
        }
