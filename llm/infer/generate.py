"""Simple autoregressive generation with a static KV cache: prefill once, then one token per step.

Knows nothing about tokenization or chat templates: ids in, ids out.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from llm.errors import InferenceError
from llm.infer.kv_cache import KVCache
from llm.model import GPT

__all__ = ["generate", "sample_next"]


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Pick next ids from logits (B, V): greedy when temperature == 0, else nucleus sampling."""
    if temperature <= 0:
        return logits.argmax(dim=-1)  # (B,)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, V)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
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
    """Generate up to `max_new_tokens` ids after `prompt`; stops after emitting a stop id (not returned)."""
    cfg = model.config
    if not prompt:
        raise InferenceError("prompt is empty")
    if len(prompt) >= cfg.max_seq_len:
        raise InferenceError(f"prompt has {len(prompt)} tokens but the model's maximum context is {cfg.max_seq_len}")
    max_new_tokens = min(max_new_tokens, cfg.max_seq_len - len(prompt))
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    stops = set(stop_ids)
    cache = KVCache.for_model(model, batch=1, capacity=len(prompt) + max_new_tokens)
    idx = torch.tensor([prompt], device=device)  # (1, T)
    pos = torch.arange(len(prompt), device=device)
    out: list[int] = []
    for _ in range(max_new_tokens):
        logits, _ = model(idx, positions=pos, kv_cache=cache, last_only=True)  # (1, 1, V)
        nxt = int(sample_next(logits[:, -1], temperature, top_p, gen)[0])
        if nxt in stops:
            break
        out.append(nxt)
        if on_token is not None:
            on_token(nxt)
        pos = torch.tensor([int(pos[-1]) + 1], device=device)
        idx = torch.tensor([[nxt]], device=device)
    return out
