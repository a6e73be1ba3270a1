"""What the training loop does for Mixture-of-Experts layers (`llm.moe`), in three calls:

- `aux_loss()` after each micro-batch's forward: the layers' balance and z-losses, added to
  the loss that is backpropagated (not to the reported cross-entropy);
- `after_step()` after each optimizer step: sums the step's expert loads over all ranks,
  moves DeepSeek-V3's aux-free biases, and keeps the step's statistics;
- `metrics()` when a step is logged: per MoE layer the expert load fractions, MaxVio,
  router entropy, dropped assignments and bias values (the `moe` field of metrics.jsonl),
  plus their means over layers as flat `moe/...` numbers.

A dense model gets no hooks (`MoEHooks.of` returns None), so its training is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from llm.moe import MoE, max_violation, moe_layers
from llm.train.distributed import DistContext

__all__ = ["MoEHooks"]


class MoEHooks:
    def __init__(self, layers: list[MoE], dist: DistContext) -> None:
        self.layers, self.dist = layers, dist
        self._aux_sum = 0.0
        self._last: list[dict[str, Any]] = []
        self._aux = 0.0

    @classmethod
    def of(cls, model: torch.nn.Module, dist: DistContext) -> "MoEHooks | None":
        layers = moe_layers(model)
        return cls(layers, dist) if layers else None

    def aux_loss(self) -> torch.Tensor | None:
        """The auxiliary losses of the forwards since the last call (a mean-type loss per micro-batch)."""
        terms = [t for t in (layer.pop_aux_loss() for layer in self.layers) if t is not None]
        if not terms:
            return None
        total = torch.stack(terms).sum()
        self._aux_sum += float(total.detach())
        return total

    def after_step(self, micro_batches: int) -> None:
        """Sum the step's loads over ranks, update the aux-free biases, keep the step's statistics."""
        taken = [layer.take_stats() for layer in self.layers]
        flat = [float(v) for load, sums in taken for v in (*load.tolist(), *sums.tolist())]
        flat = self.dist.all_sum(flat + [self._aux_sum / max(micro_batches, 1)])
        aux = flat.pop() / self.dist.world
        self._aux_sum = 0.0
        rows, at = [], 0
        for layer in self.layers:
            E = layer.n_experts
            load = torch.tensor(flat[at : at + E], dtype=torch.float64)
            tokens, entropy, dropped = flat[at + E : at + E + 3]
            at += E + 3
            layer.update_bias(load)
            total = float(load.sum())
            rows.append(
                {
                    "layer": layer.layer,
                    "load": [round(v / total, 5) if total else 0.0 for v in load.tolist()],
                    "max_vio": max_violation(load),
                    "entropy": entropy / max(tokens, 1.0),
                    "dropped": int(dropped),
                    "dropped_frac": dropped / total if total else 0.0,
                    "bias": [round(v, 6) for v in layer.router_bias.tolist()],
                }
            )
        self._last = rows
        self._aux = aux

    def metrics(self) -> dict[str, Any]:
        """The last step's MoE statistics for a metrics.jsonl row."""
        if not self._last:
            return {}
        n = len(self._last)
        return {
            "moe/max_vio": sum(r["max_vio"] for r in self._last) / n,
            "moe/entropy": sum(r["entropy"] for r in self._last) / n,
            "moe/dropped": sum(r["dropped"] for r in self._last),
            "moe/aux_loss": self._aux,
            "moe": self._last,
        }
