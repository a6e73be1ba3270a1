"""One forward pass over a paged KV cache view, for either kind of model the server runs.

`llm.model.GPT` is the readable reference (`model(idx, positions=..., kv_cache=...)` returns
`(logits, loss)`); `llm.infer.inference_model.InferenceModel` is the same function with fused,
possibly quantized weights and native kernels (`model(tokens, positions, cache)` returns
logits). The server serves the latter; tests run both.
"""

from __future__ import annotations

from typing import Union

import torch

from llm.infer.inference_model import InferenceModel
from llm.model import GPT, KVCacheLike

__all__ = ["ServedNet", "forward_logits", "model_device"]

ServedNet = Union[GPT, InferenceModel]


def forward_logits(
    model: ServedNet, idx: torch.Tensor, positions: torch.Tensor, cache: KVCacheLike, last_only: bool = False
) -> torch.Tensor:
    """Float32 logits (B, T, V), or (B, 1, V) with `last_only`, for tokens idx (B, T) at positions (B, T)."""
    if isinstance(model, GPT):
        logits, _ = model(idx, positions=positions, kv_cache=cache, last_only=last_only)
        return logits.float()
    return model(idx, positions, cache, last_only=last_only).float()


def model_device(model: ServedNet) -> torch.device:
    return next(model.parameters()).device if isinstance(model, GPT) else torch.device("cpu")
