"""Perplexity and bits-per-byte of a model on a text.

The text is tokenized once and scored with overlapping windows of `context` tokens: each
window predicts only tokens no earlier window predicted, and every prediction sees at least
`context - stride` tokens of history (the usual sliding-window evaluation). Perplexity is
exp(mean negative log-likelihood per token); bits-per-byte divides the total in bits by the
UTF-8 bytes of the predicted tokens, which makes models with different tokenizers comparable.

Knows the model's forward pass and the tokenizer; nothing about sampling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from llm.errors import DataError
from llm.infer.inference_model import InferenceModel
from llm.tokenizer import Tokenizer

__all__ = ["PerplexityResult", "evaluate_perplexity"]


@dataclass(frozen=True)
class PerplexityResult:
    tokens: int  # tokens predicted
    bytes: int  # UTF-8 bytes of those tokens
    nll: float  # total negative log-likelihood, nats
    perplexity: float
    bits_per_byte: float
    context: int
    stride: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.inference_mode()
def evaluate_perplexity(
    model: InferenceModel,
    tokenizer: Tokenizer,
    text: str,
    context: int | None = None,
    stride: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PerplexityResult:
    """Score `text`; `context` defaults to min(512, the model's maximum), `stride` to half of it."""
    max_len = model.config.max_seq_len
    context = context or min(512, max_len)
    if not 2 <= context <= max_len:
        raise DataError(f"context must be between 2 and the model's maximum context {max_len}, got {context}")
    stride = stride or max(1, context // 2)
    if not 1 <= stride <= context:
        raise DataError(f"stride must be between 1 and the context ({context}), got {stride}")
    ids = tokenizer.encode(text)
    if len(ids) < 2:
        raise DataError("the text is too short to score: it needs at least two tokens")
    nll, scored, nbytes = 0.0, 0, 0
    start = 0  # first token of the window
    done = 1  # tokens 0..done-1 are already predicted (token 0 never is: nothing precedes it)
    while done < len(ids):
        end = min(start + context, len(ids))
        window = torch.tensor([ids[start:end]])  # (1, T)
        logits = model(window, torch.arange(end - start))[0]  # (T, V)
        first = done - start  # position in the window of the first new target
        targets = window[0, first:]  # tokens start+first .. end-1
        nll += float(F.cross_entropy(logits[first - 1 : -1].float(), targets, reduction="sum"))
        scored += targets.numel()
        nbytes += sum(len(tokenizer.decode_bytes([int(t)])) for t in targets)
        done = end
        start = max(0, end - max(1, context - stride))
        if on_progress is not None:
            on_progress(done, len(ids))
    return PerplexityResult(
        tokens=scored,
        bytes=nbytes,
        nll=nll,
        perplexity=math.exp(nll / scored),
        bits_per_byte=nll / math.log(2) / max(1, nbytes),
        context=context,
        stride=stride,
    )
