"""What one timed SFT step measured, and the rates `llm bench sft` reports from it.

`sft_step_flops` counts the FLOPs a fine-tuning step needs (full or LoRA, the output head
only where there is a loss, attention within each document); `TimedStep` is one measured
optimizer step; `step_rates` turns the timed steps into medians and totals. Shared by our
side (`bench_sft`) and TRL's (`bench_trl`), so both are measured by the same rule. Knows
numbers, not models or processes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

__all__ = ["TimedStep", "sft_step_flops", "step_rates"]


def sft_step_flops(cfg, tokens: int, supervised: int, attended: int, adapter_weights: int = 0) -> float:
    """FLOPs a fine-tuning step needs for `tokens` real tokens of which `supervised` carry a loss.

    `attended` is the sum over documents of length^2: a token attends within its own document
    only (12 * L * D per query-key pair, forward and backward, the convention of
    `llm.train.flops`). `adapter_weights` > 0 means LoRA: the base is frozen (forward and
    input gradient only, 4 FLOPs per weight and token) and the adapters' weights train (6 each).
    """
    head = cfg.vocab_size * cfg.d_model
    body = cfg.num_params() - head * (1 if cfg.tie_embeddings else 2)  # the input embedding is a lookup
    attention = 12.0 * cfg.n_layers * cfg.d_model * attended
    if not adapter_weights:
        return tokens * 6.0 * body + supervised * 6.0 * head + attention
    return tokens * (4.0 * body + 6.0 * adapter_weights) + supervised * 4.0 * head + attention


@dataclass(frozen=True)
class TimedStep:
    seconds: float
    tokens: int  # real (non-padding) tokens
    supervised: int  # tokens with a loss
    attended: int  # sum over documents of length^2


def step_rates(steps: list[TimedStep], cfg, adapter_weights: int, losses: list[float]) -> dict[str, Any]:
    """Medians over the timed steps (one slow step on a shared machine does not move them), and totals."""
    flops = [sft_step_flops(cfg, s.tokens, s.supervised, s.attended, adapter_weights) for s in steps]
    return {
        "step_s": [s.seconds for s in steps],
        "step_s_median": statistics.median(s.seconds for s in steps),
        "tokens": sum(s.tokens for s in steps),
        "supervised_tokens": sum(s.supervised for s in steps),
        "tok_per_s": statistics.median(s.tokens / s.seconds for s in steps),
        "supervised_tok_per_s": statistics.median(s.supervised / s.seconds for s in steps),
        "model_flops": sum(flops),
        "gflops_per_s": statistics.median(f / s.seconds / 1e9 for f, s in zip(flops, steps)),
        "losses": losses,
    }
