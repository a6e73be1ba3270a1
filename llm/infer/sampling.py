"""How the next token is chosen from logits: `SamplingParams` and the functions that apply them.

The processing order is: repetition penalty (Keskar et al. 2019, "CTRL", section 4.1: a
seen token's positive logit is divided by the penalty, a negative one multiplied), then
temperature, top-k, top-p (Holtzman et al. 2019, nucleus sampling) and min-p (a token is
kept when its probability is at least min_p times the top token's). `target_probs` returns
the resulting distribution, which speculative sampling must reproduce exactly; `sample`
draws from it, or takes the argmax when temperature is 0; `draw` picks one id from a
distribution at a single uniform draw (the server's per-sequence sampling). `constrain` applies a grammar's
mask of allowed tokens (`llm.infer.guidance`) to the logits before any of that.

Stop strings and token budgets live here as plain data; the engine enforces them. This
module knows nothing about models or tokenizers.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SamplingParams", "constrain", "draw", "penalize", "target_probs", "sample", "seen_mask"]


class SamplingParams(BaseModel):
    """Per-request decoding settings (field names match the OpenAI API where one exists)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0.0, description="0 = greedy (argmax)")
    top_k: int = Field(0, ge=0, description="keep the k most likely tokens; 0 = off")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="keep the smallest set with this much probability")
    min_p: float = Field(0.0, ge=0.0, lt=1.0, description="drop tokens below min_p x the top probability")
    repetition_penalty: float = Field(1.0, gt=0.0, description="1 = off; > 1 discourages tokens already seen")
    max_tokens: int = Field(128, ge=1, description="new tokens at most")
    stop: list[str] = Field(default_factory=list, description="strings that end the output (not included)")
    stop_token_ids: list[int] = Field(default_factory=list, description="extra ids that end the output")
    ignore_eos: bool = Field(False, description="keep going past end-of-sequence ids (benchmarks)")
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def seen_mask(histories: list[list[int]], vocab_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, V) bool: which tokens each row has seen (prompt and output), for the repetition penalty."""
    mask = torch.zeros(len(histories), vocab_size, dtype=torch.bool, device=device)
    for b, ids in enumerate(histories):
        if ids:
            mask[b, torch.tensor(ids, device=device)] = True
    return mask


def constrain(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Logits (..., V) with every id outside `allowed` (V',) bool set to -inf; ids at or past V'
    (an embedding padded beyond the tokenizer) are never allowed."""
    V = logits.shape[-1]
    if allowed.shape[-1] < V:
        allowed = torch.cat([allowed, allowed.new_zeros(V - allowed.shape[-1])])
    return logits.masked_fill(~allowed.to(logits.device), float("-inf"))


def penalize(logits: torch.Tensor, seen: torch.Tensor | None, penalty: float) -> torch.Tensor:
    """Repetition penalty on logits (B, V) for tokens marked in `seen` (B, V)."""
    if seen is None or penalty == 1.0:
        return logits
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def target_probs(logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None = None) -> torch.Tensor:
    """The distribution (B, V) that sampling draws from; temperature must be > 0."""
    assert params.temperature > 0, "greedy decoding has no distribution to sample; use argmax"
    scores = penalize(logits.float(), seen, params.repetition_penalty) / params.temperature
    if params.top_k and params.top_k < scores.shape[-1]:
        kth = scores.topk(params.top_k, dim=-1).values[..., -1:]  # (B, 1)
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)  # (B, V)
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        drop = sorted_p.cumsum(-1) - sorted_p >= params.top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    if params.min_p > 0.0:
        probs = probs.masked_fill(probs < params.min_p * probs.amax(-1, keepdim=True), 0.0)
    return probs / probs.sum(-1, keepdim=True)


def sample(
    logits: torch.Tensor,
    params: SamplingParams,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next ids (B,) from logits (B, V): argmax when greedy, else a draw from `target_probs`."""
    if params.greedy:
        return penalize(logits, seen, params.repetition_penalty).argmax(dim=-1)
    return torch.multinomial(target_probs(logits, params, seen), 1, generator=generator).squeeze(-1)


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """One id from probs (V,) by inverting the cumulative distribution at a single uniform draw.

    Same distribution as `torch.multinomial`, which on CPU draws a random number per vocabulary
    entry (about 1 ms per row for a 49k vocabulary, a tenth of a batched decode step).
    """
    cdf = probs.cumsum(-1)  # (V,)
    u = torch.rand((), generator=generator) * cdf[-1]
    return int(torch.searchsorted(cdf, u, right=True).clamp(max=probs.shape[-1] - 1))
