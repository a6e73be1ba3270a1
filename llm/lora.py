"""LoRA adapters: low-rank updates on frozen Linear layers, and merging them back.

LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685 §4.1): y = x W^T + s * (x A^T) B^T
with A (r, in) ~ small random, B (out, r) = 0, s = alpha / r. Only A and B train, so the
optimizer holds two small matrices per adapted layer and no gradient of W is ever formed
(the backward pass skips dW, about a third of a full fine-tune's matmul work).

`LoRALinear` keeps the frozen weight under the same name (`...wq.weight`) and adds
`...wq.lora_A` / `...wq.lora_B`, so a state dict splits cleanly into the base weights a
checkpoint already knows and the adapter (`adapter.safetensors`). This module knows
modules and tensors; it knows nothing about files, training or data.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from llm.config import LORA_TARGETS, AdapterConfig
from llm.errors import ConfigError

__all__ = [
    "LoRALinear",
    "apply_lora",
    "store_frozen_base",
    "merge_lora",
    "adapter_state",
    "base_state",
    "adapters_disabled",
    "merge_adapter_into_state",
    "is_adapter_key",
]


class LoRALinear(nn.Module):
    """A frozen Linear plus a trainable low-rank update (no bias: the model's Linears have none)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        assert base.bias is None, "the model's Linear layers carry no bias"
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.weight.requires_grad_(False)
        self.scale = alpha / rank
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, device=device, dtype=dtype))
        # Kaiming-uniform A as in nn.Linear; B = 0 keeps the adapted model equal to the base at step 0.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if w.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
            w = w.to(x.dtype)  # a base stored in bf16 for training (`store_frozen_base`), run outside autocast
        y = F.linear(x, w)
        if not self.enabled:
            return y
        h = F.linear(x, self.lora_A)  # (.., in) -> (.., r)
        # y += s * h B^T inside the GEMM (beta = 1, alpha = s): a separate scale and add would each
        # sweep the (.., out) output once more, which costs as much as the thin matmuls themselves.
        # In-place is safe: the base matmul keeps its inputs for backward, not its output.
        # NOTE: autocast does not reach in-place ops, so B is cast to the output's dtype here.
        y.view(-1, self.out_features).addmm_(h.reshape(-1, h.shape[-1]), self.lora_B.to(y.dtype).t(), alpha=self.scale)
        return y

    def delta(self) -> torch.Tensor:
        """The dense update s * B @ A, shape (out, in)."""
        return (self.lora_B.float() @ self.lora_A.float()) * self.scale


def store_frozen_base(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.dtype]:
    """Keep every adapted layer's frozen weight in `dtype` (in place); returns {state-dict name: old dtype}.

    Under bf16 autocast each frozen fp32 weight is cast to bf16 on every forward pass and the
    copy is kept for the backward pass, so the step holds both; stored in bf16 there is one
    copy at half the size and no cast. The matmuls see the same bf16 values as before.
    """
    old = {}
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            old[f"{name}.weight"] = module.weight.dtype
            module.weight.data = module.weight.data.to(dtype)
    return old


def _targets(model: nn.Module, targets: list[str]) -> Iterator[tuple[nn.Module, str]]:
    for block in model.blocks:
        for t in targets:
            parent_name, attr = LORA_TARGETS[t].split(".")
            parent = getattr(block, parent_name)
            if not hasattr(parent, attr):  # a Mixture-of-Experts block has no single gate/up/down
                raise ConfigError(f"LoRA target {t!r} needs a dense feed-forward; on MoE models use q, k, v, o")
            yield parent, attr


def apply_lora(model: nn.Module, adapter: AdapterConfig) -> nn.Module:
    """Freeze every parameter and wrap the target Linears in `LoRALinear` (in place); returns the model."""
    for p in model.parameters():
        p.requires_grad_(False)
    for parent, attr in _targets(model, adapter.targets):
        linear = getattr(parent, attr)
        if not isinstance(linear, LoRALinear):
            setattr(parent, attr, LoRALinear(linear, adapter.rank, adapter.alpha))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight and put plain Linears back (in place); returns the model."""
    for block in model.blocks:
        for parent_name in ("attn", "ffn"):
            parent = getattr(block, parent_name)
            for attr, child in list(parent.named_children()):
                if isinstance(child, LoRALinear):
                    linear = nn.Linear(child.in_features, child.out_features, bias=False, device=child.weight.device)
                    with torch.no_grad():
                        merged = child.weight.float() + child.delta().to(child.weight.device)
                        linear.weight = nn.Parameter(merged.to(child.weight.dtype))
                    setattr(parent, attr, linear)
    return model


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """Run the base model: every adapter switched off inside the block (DPO's reference under LoRA)."""
    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    for m in layers:
        m.enabled = False
    try:
        yield
    finally:
        for m in layers:
            m.enabled = True


def is_adapter_key(key: str) -> bool:
    return key.endswith((".lora_A", ".lora_B"))


def adapter_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if is_adapter_key(k)}


def base_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not is_adapter_key(k)}


def merge_adapter_into_state(
    state: dict[str, torch.Tensor], adapter: dict[str, torch.Tensor], cfg: AdapterConfig
) -> dict[str, torch.Tensor]:
    """Base weights with every `W += s * B @ A` applied (float32 math, the base dtype kept)."""
    out = dict(state)
    for key in adapter:
        if not key.endswith(".lora_A"):
            continue
        prefix = key[: -len(".lora_A")]
        w = out[f"{prefix}.weight"]
        delta = (adapter[f"{prefix}.lora_B"].float() @ adapter[key].float()) * cfg.scale
        out[f"{prefix}.weight"] = (w.float() + delta).to(w.dtype)
    return out
