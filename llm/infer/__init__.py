"""Inference: the engine, KV caches, sampling, speculative decoding, quantization, benchmarks.

Knows nothing about training. The curated names below are the library surface; see
docs/inference.md. They load on first use (PEP 562), so `llm bench --help` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm.infer.completion import Completion, StreamEvent
    from llm.infer.drafters import ModelDrafter, PromptLookupDrafter
    from llm.infer.engine import Engine, decode_step, prefill
    from llm.infer.inference_model import InferenceModel
    from llm.infer.kv_cache import KVCache
    from llm.infer.quantize import QuantConfig, quantize_model
    from llm.infer.sampling import SamplingParams
    from llm.infer.speculative import SpeculativeDecoder

_HOMES = {
    "Completion": "completion",
    "Engine": "engine",
    "InferenceModel": "inference_model",
    "KVCache": "kv_cache",
    "ModelDrafter": "drafters",
    "PromptLookupDrafter": "drafters",
    "QuantConfig": "quantize",
    "SamplingParams": "sampling",
    "SpeculativeDecoder": "speculative",
    "StreamEvent": "completion",
    "decode_step": "engine",
    "prefill": "engine",
    "quantize_model": "quantize",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
