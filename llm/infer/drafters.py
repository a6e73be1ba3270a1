"""Drafters for speculative decoding: cheap guesses of the next few tokens.

- `ModelDrafter`: a smaller model that shares the target's tokenizer (e.g. `nano` drafting
  for `mini` trained on the same data) samples k tokens autoregressively from its own KV
  cache. After the target accepts a prefix, the drafter rolls its cache back to the longest
  prefix it shares with the accepted tokens (free with a static cache) and feeds the rest.
- `PromptLookupDrafter`: no model at all. It finds the latest earlier occurrence of the
  context's last n-gram and proposes the tokens that followed it (Saxena 2023, "Prompt
  Lookup Decoding"); agent traffic that quotes files and earlier turns copies a lot.

A drafter returns its draft ids and, for sampling, the distributions it drew them from (None
for a deterministic drafter, whose distribution is one-hot). It knows nothing about the
target model or about acceptance.
"""

from __future__ import annotations

from typing import Protocol

import torch

from llm.errors import InferenceError
from llm.infer.inference_model import InferenceModel
from llm.infer.kv_cache import KVCache
from llm.infer.sampling import SamplingParams, target_probs
from llm.tokenizer import Tokenizer

__all__ = ["Drafter", "ModelDrafter", "PromptLookupDrafter", "check_same_tokenizer"]


class Drafter(Protocol):
    name: str
    tokenizer: Tokenizer | None

    def start(self, capacity: int) -> None: ...

    def propose(
        self, tokens: list[int], k: int, params: SamplingParams, generator: torch.Generator | None
    ) -> tuple[list[int], torch.Tensor | None]: ...


def check_same_tokenizer(target: Tokenizer | None, draft: Tokenizer | None) -> None:
    """Speculative decoding compares token ids, so both models must use the same vocabulary."""
    if target is None or draft is None:
        return
    same = (
        target.pattern == draft.pattern
        and target.special_tokens == draft.special_tokens
        and target.mergeable_ranks == draft.mergeable_ranks
    )
    if not same:
        raise InferenceError(
            f"the draft model's tokenizer ({draft.name}, {draft.vocab_size} tokens) differs from the target's "
            f"({target.name}, {target.vocab_size} tokens); speculative decoding needs the same tokenizer "
            "(train the draft on the target's tokenizer, or use --prompt-lookup)"
        )


class ModelDrafter:
    """A small model proposing tokens; its KV cache persists across rounds and is rolled back as needed."""

    name = "model"

    def __init__(self, model: InferenceModel, tokenizer: Tokenizer | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.cache: KVCache | None = None
        self._fed: list[int] = []  # tokens whose keys/values are in the cache, in order

    def start(self, capacity: int) -> None:
        self.cache = KVCache.for_model(self.model, capacity=min(capacity, self.model.config.max_seq_len))
        self._fed = []

    @torch.inference_mode()
    def propose(
        self, tokens: list[int], k: int, params: SamplingParams, generator: torch.Generator | None
    ) -> tuple[list[int], torch.Tensor | None]:
        assert self.cache is not None, "call start() first"
        k = min(k, self.cache.capacity - len(tokens))
        if k <= 0:
            return [], None
        # Keep the longest prefix already in the cache (at least the last token must be fed to
        # get logits); later slots are overwritten as the new tokens are fed.
        keep = 0
        limit = min(len(self._fed), len(tokens) - 1)
        while keep < limit and self._fed[keep] == tokens[keep]:
            keep += 1
        new = torch.tensor([tokens[keep:]])  # (1, T)
        logits = self.model(new, torch.arange(keep, len(tokens)), self.cache, last_only=True)[0, -1]  # (V,)
        self._fed = list(tokens)
        drafts: list[int] = []
        dists: list[torch.Tensor] = []
        for i in range(k):
            if params.greedy:
                d = int(logits.argmax())
            else:
                q = target_probs(logits.unsqueeze(0), params)[0]  # (V,)
                d = int(torch.multinomial(q, 1, generator=generator))
                dists.append(q)
            drafts.append(d)
            if i + 1 < k:
                pos = torch.tensor([len(self._fed)])
                logits = self.model(torch.tensor([[d]]), pos, self.cache, last_only=True)[0, -1]
                self._fed.append(d)
        return drafts, (torch.stack(dists) if dists else None)


class PromptLookupDrafter:
    """Copy the continuation of the latest earlier occurrence of the context's last n-gram."""

    name = "prompt-lookup"
    tokenizer = None

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise InferenceError(f"prompt lookup needs 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def start(self, capacity: int) -> None:
        del capacity  # stateless

    def propose(
        self, tokens: list[int], k: int, params: SamplingParams, generator: torch.Generator | None
    ) -> tuple[list[int], None]:
        del params, generator  # deterministic
        L = len(tokens)
        for n in range(min(self.max_ngram, L - 1), self.min_ngram - 1, -1):
            pattern = tokens[L - n :]
            # Latest start i < L - n whose n-gram matches and that has at least one token after it.
            for i in range(L - n - 1, -1, -1):
                if tokens[i : i + n] == pattern:
                    return tokens[i + n : i + n + k], None
        return [], None
