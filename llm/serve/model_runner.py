"""Runs one scheduled step on the model over the paged KV cache and picks each sequence's next tokens.

A step is a forward pass per prompt chunk plus one batched pass over all decoding
sequences, each at its own position, one token each. When a single sequence is decoding
greedily and a drafter (`llm.infer.drafters`) is configured, the decode pass instead
verifies up to k proposed tokens at once, over the paged cache (speculative decoding, with
the acceptance rule of `llm.infer.speculative`, the one the offline engine uses; greedy
acceptance keeps the output identical to plain greedy decoding).

A sequence with a grammar (guided decoding, `llm.infer.guidance`) has its logits masked to
the tokens the grammar allows before sampling, and its guide advanced with every token,
forced or picked. Such a sequence never speculates: its drafts would have to be checked
against the grammar and the guide rolled back, for streams that are short and mostly forced.

Knows the model, the cache and sampling; nothing about stop conditions, text or HTTP.
Tensor letters: B rows, T tokens per row, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llm.infer.drafters import Drafter
from llm.infer.paged_kv import OutOfBlocks, PagedKVCache
from llm.infer.sampling import constrain, draw, sample, seen_mask, target_probs
from llm.infer.speculative import accept_drafts
from llm.serve.forward import ServedNet, forward_logits, model_device
from llm.serve.metrics import ServeMetrics
from llm.serve.sequence import Sequence, TokenLogprobs

__all__ = ["ModelRunner", "Pick"]


@dataclass
class Pick:
    token: int
    logprobs: TokenLogprobs | None


class ModelRunner:
    def __init__(
        self,
        model: ServedNet,
        cache: PagedKVCache,
        vocab_size: int,
        drafter: Drafter | None = None,
        num_speculative: int = 4,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        # The embedding matrix may be padded beyond the tokenizer; ids past it cannot be decoded.
        self.vocab_size = vocab_size
        self.drafter = drafter
        self.num_speculative = num_speculative
        self.device = model_device(model)
        self.metrics = metrics

    @torch.inference_mode()
    def prefill(self, chunks: list[tuple[Sequence, int]]) -> dict[Sequence, list[Pick]]:
        """Compute the planned prompt chunks; a sequence whose chunk reaches its end gets its next token.

        One forward pass per chunk: a chunk of T tokens already makes the matmuls T rows tall,
        and separate passes need no padding between prompts of different lengths.
        """
        picks: dict[Sequence, list[Pick]] = {}
        for seq, n in chunks:
            start = seq.num_computed
            idx = torch.tensor([seq.tokens[start : start + n]])  # (1, T)
            pos = torch.arange(start, start + n).unsqueeze(0)  # (1, T)
            logits = self._forward(idx, pos, [seq], last_only=True)[0, -1]  # (V,)
            seq.num_computed += n
            if seq.uncomputed == 0:
                picks[seq] = [self._pick(seq, logits, len(seq.output))]
        return picks

    @torch.inference_mode()
    def decode(self, seqs: list[Sequence]) -> dict[Sequence, list[Pick]]:
        """One token for every sequence (or several for a lone greedy one, when speculating)."""
        if len(seqs) == 1 and self._can_speculate(seqs[0]):
            spec = self._speculate(seqs[0])
            if spec is not None:
                return {seqs[0]: spec}
        idx = torch.tensor([[s.tokens[-1]] for s in seqs])  # (B, 1)
        pos = torch.tensor([[s.length - 1] for s in seqs])  # (B, 1): each row at its own position
        logits = self._forward(idx, pos, seqs, last_only=True)[:, -1]  # (B, V)
        out = {}
        for b, seq in enumerate(seqs):
            seq.num_computed += 1
            out[seq] = [self._pick(seq, logits[b], len(seq.output))]
        return out

    def _forward(self, idx: torch.Tensor, pos: torch.Tensor, seqs: list[Sequence], last_only: bool) -> torch.Tensor:
        view = self.cache.batch([s.seq_id for s in seqs])
        logits = forward_logits(self.model, idx.to(self.device), pos.to(self.device), view, last_only)  # (B, T, V)
        if logits.shape[-1] > self.vocab_size:
            logits[..., self.vocab_size :] = float("-inf")
        return logits

    def _pick(self, seq: Sequence, logits: torch.Tensor, step: int) -> Pick:
        """The token at output position `step` from logits (V,): forced, greedy or sampled."""
        opts = seq.options
        if step < len(opts.forced_prefix):
            token = opts.forced_prefix[step]
        else:
            params = opts.params
            seen = seen_mask([seq.tokens], logits.shape[-1], logits.device) if params.repetition_penalty != 1.0 else None
            scores = logits if seq.guide is None else constrain(logits, seq.guide.allowed())
            if params.greedy:
                token = int(sample(scores.unsqueeze(0), params, seen)[0])
            else:
                token = draw(target_probs(scores.unsqueeze(0), params, seen)[0], seq.generator)
        if seq.guide is not None:
            seq.guide.accept(token)
        # Logprobs are the model's own (unmasked), as the model saw the choice.
        return Pick(token, _logprobs(logits, token, opts.logprobs) if opts.logprobs is not None else None)

    def _can_speculate(self, seq: Sequence) -> bool:
        params = seq.options.params
        return (
            self.drafter is not None
            and params.greedy
            and params.repetition_penalty == 1.0
            and not seq.forcing
            and seq.guide is None
        )

    def _speculate(self, seq: Sequence) -> list[Pick] | None:
        """Verify proposed tokens in one pass; returns the accepted ones plus the model's own next token."""
        L = seq.length
        k = min(self.num_speculative, self.model.config.max_seq_len - L)
        # Greedy only, so the drafter's distributions (for speculative sampling) are not needed.
        draft = self.drafter.propose(seq.tokens, k, seq.options.params, None)[0] if k > 0 else []
        if not draft:
            return None
        try:
            self.cache.reserve(seq.seq_id, L + len(draft))
        except OutOfBlocks:
            return None
        idx = torch.tensor([[seq.tokens[-1], *draft]])  # (1, 1+k)
        pos = torch.arange(L - 1, L + len(draft)).unsqueeze(0)  # (1, 1+k)
        logits = self._forward(idx, pos, [seq], last_only=False)[0]  # (1+k, V)
        # No forced tokens, no grammar and no repetition penalty here (`_can_speculate`).
        tokens, accepted = accept_drafts(logits, draft, seq.options.params)
        top = seq.options.logprobs
        picks = [Pick(t, _logprobs(logits[i], t, top) if top is not None else None) for i, t in enumerate(tokens)]
        if self.metrics is not None:
            self.metrics.speculative_proposed.inc(len(draft))
            self.metrics.speculative_accepted.inc(accepted)
        # Keys/values are valid up to the last accepted draft token; the rest is overwritten later.
        seq.num_computed = L + accepted
        return picks


def _logprobs(logits: torch.Tensor, token: int, top: int) -> TokenLogprobs:
    lp = torch.log_softmax(logits, dim=-1)  # (V,)
    alts: list[tuple[int, float]] = []
    if top > 0:
        values, ids = lp.topk(top)
        alts = list(zip(ids.tolist(), values.tolist()))
    return TokenLogprobs(token, float(lp[token]), alts)
