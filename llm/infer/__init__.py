"""Inference: the engine, KV caches, sampling, speculative decoding, quantization, benchmarks.

Knows nothing about training. The curated names below are the library surface; see
docs/inference.md. They load on first use (`lazy_loader`, PEP 562), so `llm bench --help` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from llm.infer.completion import Completion, StreamEvent
    from llm.infer.drafters import ModelDrafter, PromptLookupDrafter
    from llm.infer.engine import Engine, decode_step, prefill
    from llm.infer.inference_model import InferenceModel
    from llm.infer.kv_cache import KVCache
    from llm.infer.quantize import QuantConfig, quantize_model
    from llm.infer.sampling import SamplingParams
    from llm.infer.speculative import SpeculativeDecoder

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "completion": ["Completion", "StreamEvent"],
        "drafters": ["ModelDrafter", "PromptLookupDrafter"],
        "engine": ["Engine", "decode_step", "prefill"],
        "inference_model": ["InferenceModel"],
        "kv_cache": ["KVCache"],
        "quantize": ["QuantConfig", "quantize_model"],
        "sampling": ["SamplingParams"],
        "speculative": ["SpeculativeDecoder"],
    },
)
