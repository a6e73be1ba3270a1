"""One-call generation for library users: ids in, ids out, over `llm.infer.engine.Engine`.

`generate` runs a GPT on one prompt with the usual knobs; `sample_next` picks next ids from
logits with temperature / top-p (for callers that run the model themselves). Both are thin
wrappers over `Engine` and `llm.infer.sampling`. Knows nothing about tokenization.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from llm.infer.engine import Engine
from llm.infer.sampling import SamplingParams, sample
from llm.model import GPT

__all__ = ["generate", "sample_next"]


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Next ids (B,) from logits (B, V): greedy when temperature == 0, else nucleus sampling."""
    return sample(logits, SamplingParams(temperature=temperature, top_p=top_p), generator=generator)


def generate(
    model: GPT,
    prompt: list[int],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop_ids: Iterable[int] = (),
    on_token: Callable[[int], None] | None = None,
) -> list[int]:
    """Up to `max_new_tokens` ids after `prompt`; stops at a stop id (not returned)."""
    engine = Engine(model, end_ids=stop_ids)
    params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed)
    out: list[int] = []
    for event in engine.stream(prompt, params):
        if event.token is not None:
            out.append(event.token)
            if on_token is not None:
                on_token(event.token)
    return out
