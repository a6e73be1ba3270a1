"""Speculative decoding (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding").

Each round a drafter (`llm.infer.drafters`) proposes k tokens and the target scores the last
accepted token plus all k drafts in one forward pass, which costs about as much as one
decoding step because decoding is memory-bound. Then:

- greedy: drafts are kept while they equal the target's argmax; the target's own choice at
  the first mismatch (or after the last draft) is appended. The output is the target's
  greedy output, token for token (the native kernels give bit-identical logits for one row
  or several).
- sampling: draft x with draft probability q(x) is kept with probability min(1, p(x)/q(x));
  on rejection the token is drawn from norm(max(0, p - q)) and the round ends; if all are
  kept, a bonus token is drawn from p (section 2.3). The output is distributed exactly as
  the target's; p includes temperature, top-k/p, min-p and the repetition penalty.

With acceptance rate alpha, k drafts and cost ratio c (a draft step over a target step), the
expected speedup is (1 - alpha^(k+1)) / ((1 - alpha)(k c + 1)) (section 3.4, eq. 1).
`adaptive=True` re-picks k every round to maximise it from the running alpha and c.

Rejected drafts leave stale slots in the static KV cache; they sit past the accepted
position, so the causal rule hides them until they are overwritten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import torch

from llm.errors import InferenceError
from llm.infer.completion import CompletionBuilder, StreamEvent
from llm.infer.drafters import Drafter, check_same_tokenizer
from llm.infer.engine import Engine, prefill
from llm.infer.sampling import SamplingParams, penalize, sample, seen_mask, target_probs

__all__ = ["SpeculativeDecoder", "SpeculativeStats", "accept_drafts", "predicted_speedup"]

MAX_GAMMA = 15  # verification of gamma + 1 tokens stays a small-batch (GEMV-shaped) pass


def predicted_speedup(alpha: float, gamma: float, c: float) -> float:
    """Leviathan et al. eq. 1: expected walltime improvement for acceptance rate alpha, gamma drafts, cost ratio c."""
    alpha = min(max(alpha, 0.0), 0.999)
    return (1 - alpha ** (gamma + 1)) / ((1 - alpha) * (gamma * c + 1))


def accept_drafts(
    logits: torch.Tensor,
    drafts: list[int],
    params: SamplingParams,
    q: torch.Tensor | None = None,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[list[int], int]:
    """The tokens one verification round produces, and how many of them are accepted drafts.

    logits (1 + k, V): the target's rows after the last accepted token and after each of the k
    `drafts`. q (k, V): the distributions the drafts were drawn from, None for a deterministic
    drafter (one-hot). seen (V,): tokens seen so far, for the repetition penalty (not changed).
    Greedy keeps drafts while they equal the target's argmax; sampling keeps draft d with
    probability min(1, p(d)/q(d)) and else draws from norm(max(0, p - q)) (Leviathan et al.
    2023, section 2.3). Either way the round ends with one token of the target's own.
    """
    seen = None if seen is None else seen.clone()
    out: list[int] = []
    for i, d in enumerate(drafts):
        row = logits[i : i + 1]  # (1, V)
        if params.greedy:
            choice = int(penalize(row, None if seen is None else seen[None], params.repetition_penalty).argmax())
            if choice != d:
                return out + [choice], i
        else:
            p = target_probs(row, params, None if seen is None else seen[None])[0]  # (V,)
            q_d = float(q[i, d]) if q is not None else 1.0
            r = float(torch.rand(1, generator=generator))
            if r >= min(1.0, float(p[d]) / q_d):
                residual = p - (q[i] if q is not None else torch.nn.functional.one_hot(torch.tensor(d), p.numel()))
                residual = residual.clamp(min=0)
                if float(residual.sum()) <= 0:  # p == q: rejection has probability 0; guard rounding
                    residual = p
                return out + [int(torch.multinomial(residual / residual.sum(), 1, generator=generator))], i
        out.append(d)
        if seen is not None:
            seen[d] = True
    bonus = sample(logits[len(drafts) :], params, None if seen is None else seen[None], generator)
    return out + [int(bonus[0])], len(drafts)


@dataclass
class SpeculativeStats:
    rounds: int = 0  # target forward passes after the prefill
    proposed: int = 0  # draft tokens the target checked
    accepted: int = 0
    rejections: int = 0  # rounds that ended at a rejected draft
    emitted: int = 0  # tokens produced by rounds (accepted drafts + the target's own token)
    draft_seconds: float = 0.0
    draft_steps: int = 0  # drafter forward passes (0 for prompt lookup)
    target_seconds: float = 0.0

    @property
    def alpha(self) -> float:
        """Acceptance rate: the estimate of Leviathan's alpha (each draft accepted independently)."""
        return self.accepted / max(1, self.accepted + self.rejections)

    @property
    def mean_accepted(self) -> float:
        """Tokens produced per target forward pass (1 + accepted drafts per round)."""
        return self.emitted / max(1, self.rounds)

    @property
    def mean_gamma(self) -> float:
        return self.proposed / max(1, self.rounds)

    @property
    def cost_ratio(self) -> float:
        """c: time of one drafter step over one target step (0 for a model-free drafter)."""
        per_draft = self.draft_seconds / max(1, self.draft_steps or self.proposed)
        per_target = self.target_seconds / max(1, self.rounds)
        return per_draft / per_target if per_target > 0 else 0.0

    def predicted(self) -> float:
        return predicted_speedup(self.alpha, self.mean_gamma, self.cost_ratio)

    def as_dict(self) -> dict[str, float]:
        return {
            "alpha": self.alpha,
            "mean_accepted": self.mean_accepted,
            "mean_gamma": self.mean_gamma,
            "cost_ratio": self.cost_ratio,
            "predicted_speedup": self.predicted(),
            "rounds": self.rounds,
            "proposed": self.proposed,
            "accepted": self.accepted,
        }


class SpeculativeDecoder:
    """Decodes one prompt with a drafter; pass it to `Engine.generate/stream(decoder=...)`."""

    def __init__(self, drafter: Drafter, gamma: int = 4, adaptive: bool = False) -> None:
        if not 1 <= gamma <= MAX_GAMMA:
            raise InferenceError(f"gamma (draft tokens per round) must be between 1 and {MAX_GAMMA}, got {gamma}")
        self.drafter, self.gamma, self.adaptive = drafter, gamma, adaptive
        self.stats = SpeculativeStats()

    def _next_gamma(self) -> int:
        if not self.adaptive or self.stats.rounds < 4:
            return self.gamma
        alpha, c = self.stats.alpha, self.stats.cost_ratio
        # A verified token costs a little even when drafting is free (e.g. prompt lookup).
        c = max(c, 0.02)
        return max(range(1, MAX_GAMMA + 1), key=lambda g: predicted_speedup(alpha, g, c))

    @torch.inference_mode()
    def run(
        self,
        engine: Engine,
        prompt: list[int],
        params: SamplingParams,
        builder: CompletionBuilder,
        generator: torch.Generator | None,
    ) -> Iterator[StreamEvent]:
        check_same_tokenizer(engine.tokenizer, self.drafter.tokenizer)
        model = engine.model
        capacity = min(len(prompt) + builder.max_new + MAX_GAMMA + 1, model.config.max_seq_len)
        cache = engine.new_cache(1, capacity)
        self.drafter.start(capacity)
        seen = seen_mask([prompt], model.config.vocab_size)[0] if params.repetition_penalty != 1.0 else None
        tokens = list(prompt)
        first = int(sample(prefill(model, cache, [prompt]), params, None if seen is None else seen[None], generator)[0])
        emit = [first]
        while True:
            for t in emit:
                ev = builder.push(t)
                if ev is not None:
                    yield ev
                tokens.append(t)
                if seen is not None:
                    seen[t] = True
            if builder.finished:
                return
            k = min(self._next_gamma(), builder.max_new - len(builder.tokens), capacity - len(tokens))
            t0 = time.perf_counter()
            drafts, q = self.drafter.propose(tokens, k, params, generator) if k > 0 else ([], None)
            t1 = time.perf_counter()
            n = len(tokens) - 1  # position of the last token, whose keys are not cached yet
            feed = torch.tensor([[tokens[-1], *drafts]])  # (1, 1 + k)
            logits = model(feed, torch.arange(n, n + feed.shape[1]), cache)[0]  # (1 + k, V)
            t2 = time.perf_counter()
            emit, accepted = accept_drafts(logits, drafts, params, q, seen, generator)
            st = self.stats
            st.rounds += 1
            st.proposed += len(drafts)
            st.accepted += accepted
            st.rejections += accepted < len(drafts)
            st.emitted += len(emit)
            st.draft_seconds += t1 - t0
            st.target_seconds += t2 - t1
            st.draft_steps += len(drafts) if getattr(self.drafter, "model", None) is not None else 0
