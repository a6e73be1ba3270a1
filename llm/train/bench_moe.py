"""`llm bench moe`: the Mixture-of-Experts layer's dispatch and an MoE model's training speed.

Two measurements, rounds alternating between the contenders so a change in machine load
hits both:

- dispatch: one MoE layer (8 experts, top-2 by default), forward + backward on random
  tokens, with the grouped dispatch of `llm.moe` beside the textbook loop (a Python loop
  over experts, each gathering its tokens with a boolean mask); outputs and gradients of
  the two are compared on the same weights and inputs;
- model: full training steps (`llm bench train`'s step) of a dense preset and of the same
  preset with its feed-forward swapped for top-k of n experts of width ffn_hidden / top_k,
  so both use the same active parameters per token.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import torch
from pydantic import ValidationError

from llm.config import MoEConfig, format_validation_error, load_preset
from llm.errors import ConfigError
from llm.moe import MoE
from llm.train.bench import bench_train

__all__ = ["bench_moe", "moe_overrides", "random_moe_layer"]


def moe_overrides(preset: str, n_experts: int, top_k: int, balance: str = "aux_free") -> list[str]:
    """model.* overrides that swap `preset`'s feed-forward for top_k of n_experts at equal active width."""
    hidden = load_preset(preset).ffn_hidden // top_k
    return [
        f"model.moe.n_experts={n_experts}",
        f"model.moe.top_k={top_k}",
        f"model.moe.expert_hidden={hidden}",
        f"model.moe.balance={balance}",
    ]


def _dispatch_layer(preset: str, n_experts: int, top_k: int) -> MoE:
    base = load_preset(preset)
    cfg = base.model_copy(update={"moe": MoEConfig(n_experts=n_experts, top_k=top_k, expert_hidden=base.ffn_hidden // top_k)})
    return random_moe_layer(cfg, std=0.05)


def random_moe_layer(cfg, std: float) -> MoE:
    """Layer 0 of `cfg` as an MoE block with N(0, std) weights (seed 0), in training mode."""
    from llm.model import FeedForward

    torch.manual_seed(0)
    layer = MoE(cfg, 0, lambda hidden: FeedForward(cfg, hidden))
    for p in layer.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, 0.0, std)
    return layer.train()


def _fwd_bwd(layer: MoE, x: torch.Tensor, idx: torch.Tensor, gates: torch.Tensor, dispatch: str):
    """Output and gradients (input, gates, experts) of one dispatch on fixed routing."""
    x, gates = x.detach().requires_grad_(True), gates.detach().requires_grad_(True)
    y = (layer._grouped if dispatch == "grouped" else layer._loop)(x, idx, gates, None)  # (N, D)
    y.square().mean().backward()
    grads = [x.grad, gates.grad] + [p.grad.clone() for p in layer.parameters() if p.grad is not None]
    layer.zero_grad(set_to_none=True)
    return y.detach(), grads


def bench_dispatch(preset: str, n_experts: int, top_k: int, tokens: int, steps: int, rounds: int) -> dict[str, Any]:
    """Grouped vs textbook dispatch, forward + backward, on the same routing (computed once, untimed)."""
    layer = _dispatch_layer(preset, n_experts, top_k)
    x = torch.randn(tokens, layer.router.in_features, generator=torch.Generator().manual_seed(0))  # (N, D)
    with torch.no_grad():
        _, _, idx, gates = layer.route(x)  # (N, K) each
    (ya, ga), (yb, gb) = (_fwd_bwd(layer, x, idx, gates, d) for d in ("grouped", "loop"))
    out_diff = float((ya - yb).abs().max())
    grad_diff = max(float((a - b).abs().max()) for a, b in zip(ga, gb))
    rates: dict[str, list[float]] = {"grouped": [], "loop": []}
    for _ in range(rounds):
        for name in rates:
            t0 = time.perf_counter()
            for _ in range(steps):
                _fwd_bwd(layer, x, idx, gates, name)
            rates[name].append(steps * tokens / (time.perf_counter() - t0))
    grouped, loop = statistics.median(rates["grouped"]), statistics.median(rates["loop"])
    return {
        "n_experts": n_experts,
        "top_k": top_k,
        "tokens": tokens,
        "d_model": layer.router.in_features,
        "expert_hidden": layer.experts[0].w_gate.out_features,
        "grouped_tok_per_s": grouped,
        "loop_tok_per_s": loop,
        "speedup": grouped / loop,
        "max_abs_diff_output": out_diff,
        "max_abs_diff_grad": grad_diff,
        "equal": out_diff <= 1e-5 and grad_diff <= 1e-5,
    }


def bench_model(preset: str, n_experts: int, top_k: int, batch_size: int, seq_len: int, steps: int, rounds: int) -> dict[str, Any]:
    variants = {"dense": [], "moe": moe_overrides(preset, n_experts, top_k)}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, extra in variants.items():
            res = bench_train(preset, "fp32", batch_size, seq_len, steps=steps, rounds=1, warmup=1 if r else 2, overrides=extra)
            rates[name].append(res["tok_per_s"])
    from llm.train.config import load_train_config

    out: dict[str, Any] = {"preset": preset, "batch_size": batch_size, "seq_len": seq_len}
    for name, extra in variants.items():
        cfg = load_train_config(None, [f"model.preset={preset}", *extra]).model.build()
        out[name] = {
            "tok_per_s": statistics.median(rates[name]),
            "tok_per_s_rounds": rates[name],
            "params_total": cfg.num_params(),
            "params_active": cfg.num_params(active=True),
        }
    out["moe_vs_dense"] = out["moe"]["tok_per_s"] / out["dense"]["tok_per_s"]
    return out


def bench_moe(
    preset: str = "nano",
    n_experts: int = 8,
    top_k: int = 2,
    tokens: int = 4096,
    batch_size: int = 8,
    seq_len: int = 256,
    steps: int = 3,
    rounds: int = 3,
    threads: int | None = None,
) -> dict[str, Any]:
    """Dispatch (grouped vs textbook loop) and model (MoE vs dense at equal active parameters) tok/s."""
    try:
        MoEConfig(n_experts=n_experts, top_k=top_k)  # bad sizes fail here, in one line, before any work
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "llm bench moe")) from exc
    if threads:
        torch.set_num_threads(threads)
    load = os.getloadavg()[0]
    dispatch = bench_dispatch(preset, n_experts, top_k, tokens, steps, rounds)
    model = bench_model(preset, n_experts, top_k, batch_size, seq_len, steps, rounds)
    return {
        "dispatch": dispatch,
        "model": model,
        "threads": torch.get_num_threads(),
        "load_avg_1m": load,
        "load_avg_1m_end": os.getloadavg()[0],
    }
