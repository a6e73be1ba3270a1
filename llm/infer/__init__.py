"""Inference: the engine, KV caches, sampling, speculative decoding, quantization, benchmarks.

Knows nothing about training. The curated names below are the library surface; see
docs/inference.md.
"""

from llm.infer.completion import Completion, StreamEvent
from llm.infer.drafters import ModelDrafter, PromptLookupDrafter
from llm.infer.engine import Engine, decode_step, prefill
from llm.infer.inference_model import InferenceModel
from llm.infer.kv_cache import KVCache
from llm.infer.quantize import QuantConfig, quantize_model
from llm.infer.sampling import SamplingParams
from llm.infer.speculative import SpeculativeDecoder

__all__ = [
    "Completion",
    "Engine",
    "InferenceModel",
    "KVCache",
    "ModelDrafter",
    "PromptLookupDrafter",
    "QuantConfig",
    "SamplingParams",
    "SpeculativeDecoder",
    "StreamEvent",
    "decode_step",
    "prefill",
    "quantize_model",
]
