"""Mixture-of-Experts feed-forward: a router sends each token to `top_k` of `n_experts` experts.

    scores  s = x W_r^T                      (N, E) in float32
    probs   p = softmax(s) | sigmoid(s)      the router's affinities
    select  top_k of p + b                   b: DeepSeek-V3's balancing bias, selection only
    gates   g = p[selected], renormalised    (N, K) (kept as is for top-1, as in Switch)
    y       = sum_k g_k * expert_k(x) + shared(x)

Dispatch groups the token-expert assignments by expert (one stable sort), runs each expert
once on its contiguous slice and scatters the gated outputs back with one `index_add`; the
textbook loop (`dispatch = "loop"`: for each expert, a boolean mask picks its tokens) is kept
as the reference the tests and `llm bench moe` compare against.

This module knows nothing about what an expert is (the model passes a factory; in
`llm.model` it is the SwiGLU `FeedForward`) nor about training loops: each training forward
records the experts' loads and the auxiliary losses on the layer, and the training loop's
hooks (`llm.train.moe_hooks`) collect them and update the bias after each optimizer step.

Tensor letters: N tokens (B*T), D model width, E experts, K experts per token, M kept assignments.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from llm.config import ModelConfig

__all__ = ["MoE", "moe_layers", "balance_loss", "z_loss", "max_violation", "DISPATCHES"]

DISPATCHES = ("grouped", "loop")


def balance_loss(probs: torch.Tensor, idx: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Switch/GShard load-balancing loss n * sum_i f_i * P_i (Fedus et al. 2021, eq. 4).

    f_i is the fraction of the N*K assignments that went to expert i (a count: no gradient)
    and P_i the mean router probability of expert i; both sum to 1, and the loss is 1 when
    routing is uniform. NOTE: the shortcut n * sum_i P_i^2 is not the same loss. Its gradient
    2n P_i only spreads the *mean probabilities*, which can be uniform while top-k sends every
    token to one expert (each token slightly prefers expert 0): the shortcut is then already at
    its minimum and pushes nowhere, whereas d/dP_i of n * sum f_i P_i = n f_i pushes down
    exactly the experts the top-k decision overloads.
    """
    f = torch.bincount(idx.reshape(-1), minlength=n_experts).to(probs.dtype) / idx.numel()  # (E,)
    P = probs.mean(0)  # (E,)
    return n_experts * (f * P).sum()


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE router z-loss (Zoph et al. 2022, eq. 5): mean of logsumexp(s)^2, keeps logits small."""
    return torch.logsumexp(logits, dim=-1).pow(2).mean()


def max_violation(load: torch.Tensor) -> float:
    """MaxVio (DeepSeek-V3 §2.1.2 / Wang et al. 2024): max load / mean load - 1; 0 when balanced."""
    mean = float(load.float().mean())
    return float(load.max()) / mean - 1.0 if mean > 0 else 0.0


class MoE(nn.Module):
    """A routed feed-forward block; `make_expert(hidden)` builds one D -> D expert of that width."""

    def __init__(self, cfg: ModelConfig, layer: int, make_expert: Callable[[int], nn.Module]) -> None:
        super().__init__()
        assert cfg.moe is not None
        m = cfg.moe
        self.layer, self.spec = layer, m
        self.n_experts, self.top_k = m.n_experts, m.top_k
        self.router = nn.Linear(cfg.d_model, m.n_experts, bias=False)
        # NOTE: a Parameter with requires_grad=False rather than a buffer, so loaders that build
        # on the meta device materialise it like any weight; it never has a gradient, the
        # optimizer skips it, and only `update_bias` changes it.
        self.router_bias = nn.Parameter(torch.zeros(m.n_experts), requires_grad=False)
        self.experts = nn.ModuleList(make_expert(cfg.expert_hidden) for _ in range(m.n_experts))
        # n_shared always-on experts of width h are one SwiGLU of width n_shared * h (the sum of
        # the separate experts' outputs is the same function).
        self.shared = make_expert(m.n_shared * cfg.expert_hidden) if m.n_shared else None
        self.dispatch = "grouped"
        self.reset_stats()

    @property
    def ffn_modules(self) -> tuple[nn.Module, ...]:
        """The experts (routed and shared) whose matrices quantization packs; the router stays float."""
        return (*self.experts, *((self.shared,) if self.shared is not None else ()))

    # ---- routing -----------------------------------------------------------------------

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits (N, E), probs (N, E), selected experts (N, K), gate weights (N, K)) for x (N, D)."""
        with torch.autocast(x.device.type, enabled=False):  # routing decisions in float32
            logits = F.linear(x.float(), self.router.weight.float())  # (N, E)
        probs = logits.softmax(-1) if self.spec.router == "softmax" else logits.sigmoid()
        idx = (probs.detach() + self.router_bias).topk(self.top_k, dim=-1).indices  # (N, K)
        gates = probs.gather(-1, idx)  # (N, K): the bias is not in the weights
        if self.top_k > 1:
            # Renormalised over the chosen experts (GShard, Mixtral, DeepSeek-V3's sigmoid gates);
            # top-1 keeps p itself, or the task loss would give the router no gradient (Switch).
            gates = gates / gates.sum(-1, keepdim=True)
        return logits, probs, idx, gates

    def capacity_mask(self, idx: torch.Tensor) -> torch.Tensor | None:
        """(N, K) True for assignments within their expert's capacity (training only), first tokens first."""
        cf = self.spec.capacity_factor
        if cf is None or not self.training:
            return None
        N = idx.shape[0]
        capacity = math.ceil(cf * N * self.top_k / self.n_experts)
        flat = idx.reshape(-1)  # token-major: a token's assignments precede the next token's
        rank = F.one_hot(flat, self.n_experts).cumsum(0).gather(1, flat[:, None]).squeeze(1) - 1  # (N*K,)
        return (rank < capacity).view_as(idx)

    # ---- dispatch ----------------------------------------------------------------------

    def _grouped(self, x: torch.Tensor, idx: torch.Tensor, gates: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        flat = idx.reshape(-1)  # (N*K,)
        order = flat.argsort(stable=True)  # assignments grouped by expert, token order inside
        if keep is not None:
            order = order[keep.reshape(-1)[order]]  # (M,)
        counts = torch.bincount(flat[order], minlength=self.n_experts).tolist()
        tokens = order // self.top_k  # (M,) the token of each assignment
        xs = x[tokens]  # (M, D)
        ys = torch.cat([expert(part) for expert, part in zip(self.experts, xs.split(counts))])  # (M, D)
        ys = ys * gates.reshape(-1)[order].unsqueeze(-1).to(ys.dtype)
        return torch.zeros(x.shape, dtype=ys.dtype, device=x.device).index_add_(0, tokens, ys)

    def _loop(self, x: torch.Tensor, idx: torch.Tensor, gates: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """The textbook version: for each expert, a boolean mask gathers its tokens."""
        if keep is not None:
            gates = gates * keep
        out = None
        for e, expert in enumerate(self.experts):
            mask = idx == e  # (N, K)
            rows = mask.any(-1)  # (N,)
            y = expert(x[rows]) * (gates * mask).sum(-1)[rows].unsqueeze(-1)
            if out is None:
                out = torch.zeros(x.shape, dtype=y.dtype, device=x.device)
            out[rows] += y.to(out.dtype)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = x.reshape(-1, shape[-1])  # (N, D)
        logits, probs, idx, gates = self.route(h)
        keep = self.capacity_mask(idx)
        dispatch = self._grouped if self.dispatch == "grouped" else self._loop
        y = dispatch(h, idx, gates, keep)  # (N, D)
        if self.shared is not None:
            y = y + self.shared(h)
        if self.training and torch.is_grad_enabled():
            self._record(logits, probs, idx, keep)
        return y.view(shape)

    # ---- what a training step reads ------------------------------------------------------

    def reset_stats(self) -> None:
        self._aux: list[torch.Tensor] = []
        self._load = torch.zeros(self.n_experts, dtype=torch.float64)
        self._sums = torch.zeros(3, dtype=torch.float64)  # tokens, entropy sum, dropped assignments

    def _record(self, logits: torch.Tensor, probs: torch.Tensor, idx: torch.Tensor, keep: torch.Tensor | None) -> None:
        spec = self.spec
        p = probs if spec.router == "softmax" else probs / probs.sum(-1, keepdim=True)  # a distribution per token
        aux = logits.new_zeros(())
        if spec.balance == "aux_loss" and spec.aux_loss_coef > 0:
            aux = aux + spec.aux_loss_coef * balance_loss(p, idx, self.n_experts)
        if spec.router_z_loss_coef > 0:
            aux = aux + spec.router_z_loss_coef * z_loss(logits)
        if aux.requires_grad:
            self._aux.append(aux)
        with torch.no_grad():
            self._load = self._load.to(idx.device) + torch.bincount(idx.reshape(-1), minlength=self.n_experts)
            entropy = -(p * p.clamp_min(1e-20).log()).sum(-1).sum()
            dropped = 0 if keep is None else (~keep).sum()
            self._sums = self._sums.to(idx.device) + torch.stack(
                [torch.tensor(float(idx.shape[0]), device=idx.device), entropy.double(), torch.as_tensor(dropped, device=idx.device).double()]
            ).double()

    def pop_aux_loss(self) -> torch.Tensor | None:
        """The auxiliary losses (balance, z-loss) of the forwards since the last call, summed."""
        aux, self._aux = self._aux, []
        return torch.stack(aux).sum() if aux else None

    def take_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(assignments per expert (E,), [tokens, entropy sum, dropped]) since the last call; resets them."""
        load, sums = self._load, self._sums
        self._load, self._sums = torch.zeros_like(load), torch.zeros_like(sums)
        return load, sums

    @torch.no_grad()
    def update_bias(self, load: torch.Tensor) -> None:
        """DeepSeek-V3 §2.1.2: b_i += gamma * sign(mean load - load_i), after each optimizer step.

        Overloaded experts lose selection score and underloaded ones gain it; no gradient is
        involved, so the language-model loss is never traded for balance.
        """
        if self.spec.balance == "aux_free":
            load = load.to(self.router_bias.device, torch.float32)
            self.router_bias.add_(self.spec.bias_update_rate * torch.sign(load.mean() - load))


def moe_layers(model: nn.Module) -> list[MoE]:
    return [m for m in model.modules() if isinstance(m, MoE)]
