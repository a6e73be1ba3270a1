"""The inference engine: prefill once, then decode one token per step from a static KV cache.

Two small pure functions do the model work, so a scheduler can call them on any batch:

    prefill(model, cache, prompts)             -> logits (B, V) after each prompt
    decode_step(model, cache, tokens, positions) -> logits (B, V) for one token per row

Rows of a batch may sit at different positions (prompts of different lengths are
right-padded; the cache's causal rule keeps padding invisible). `Engine` wraps them with
sampling, end conditions and streaming: `engine.stream(prompts, params)` yields a
`StreamEvent` per token and row, `engine.generate(...)` returns one `Completion` per prompt.
A speculative decoder (`llm.infer.speculative`) can take over the loop for one prompt.

The engine knows ids, not text: a tokenizer is only used to match stop strings and to
stream text. Tensor letters: B batch, T tokens, V vocabulary.
"""

from __future__ import annotations

import os
import time
from typing import Iterable, Iterator, Protocol

import torch

from llm.errors import InferenceError
from llm.infer.completion import Completion, CompletionBuilder, StreamEvent
from llm.infer.inference_model import InferenceModel
from llm.infer.kv_cache import KVCache
from llm.infer.sampling import SamplingParams, sample, seen_mask
from llm.model import GPT
from llm.tokenizer import Tokenizer

__all__ = ["prefill", "decode_step", "Engine", "Decoder", "default_threads"]


def default_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@torch.inference_mode()
def prefill(model: InferenceModel, cache: KVCache, prompts: list[list[int]]) -> torch.Tensor:
    """Run the prompts (right-padded into one batch) through the model; logits (B, V) after each."""
    B, T = len(prompts), max(len(p) for p in prompts)
    tokens = torch.zeros(B, T, dtype=torch.long)
    for b, p in enumerate(prompts):
        tokens[b, : len(p)] = torch.tensor(p)
    last = torch.tensor([len(p) - 1 for p in prompts])  # (B,)
    return model(tokens, torch.arange(T), cache, logits_at=last)[:, 0]  # (B, V)


@torch.inference_mode()
def decode_step(model: InferenceModel, cache: KVCache, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """One token per row: tokens (B,) at positions (B,) -> logits (B, V)."""
    return model(tokens.unsqueeze(1), positions.unsqueeze(1), cache, last_only=True)[:, 0]


class Decoder(Protocol):
    """Something that can take over decoding of one prompt (e.g. a speculative decoder)."""

    def run(
        self,
        engine: "Engine",
        prompt: list[int],
        params: SamplingParams,
        builder: CompletionBuilder,
        generator: torch.Generator | None,
    ) -> Iterator[StreamEvent]: ...


class Engine:
    """Generation with a model re-laid out for inference; `model` may be a GPT or an InferenceModel."""

    def __init__(
        self,
        model: GPT | InferenceModel,
        tokenizer: Tokenizer | None = None,
        *,
        dtype: str = "float32",
        end_ids: Iterable[int] = (),
        threads: int | None = None,
    ) -> None:
        torch.set_num_threads(threads or default_threads())
        self.model = model if isinstance(model, InferenceModel) else InferenceModel.from_gpt(model, dtype)
        self.config = self.model.config
        self.tokenizer = tokenizer
        self.end_ids = set(end_ids)

    def check_prompt(self, prompt: list[int]) -> None:
        """Raise InferenceError for an empty prompt, unknown ids or a prompt the context cannot hold."""
        cfg = self.config
        if not prompt:
            raise InferenceError("the prompt is empty; give at least one token")
        if len(prompt) >= cfg.max_seq_len:
            raise InferenceError(
                f"the prompt has {len(prompt)} tokens but the model's maximum context is {cfg.max_seq_len} "
                "(including at least one new token); shorten the prompt"
            )
        bad = [t for t in prompt if not 0 <= t < cfg.vocab_size]
        if bad:
            raise InferenceError(f"token id {bad[0]} is outside the vocabulary (0..{cfg.vocab_size - 1})")

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        return KVCache.for_model(self.model, batch=batch, capacity=min(capacity, self.config.max_seq_len))

    def _start(
        self, prompts: list[int] | list[list[int]], params: SamplingParams | None, decoder: Decoder | None
    ) -> tuple[list[CompletionBuilder], Iterator[StreamEvent]]:
        """Validate now (errors surface at the call, not at the first `next`) and return the event iterator."""
        params = params or SamplingParams()
        batch = [prompts] if prompts and isinstance(prompts[0], int) else list(prompts)
        if not batch:
            raise InferenceError("no prompts given")
        if decoder is not None and len(batch) != 1:
            raise InferenceError("speculative decoding runs one prompt at a time; pass a single prompt")
        for p in batch:
            self.check_prompt(p)
        builders = [
            CompletionBuilder(b, len(p), params, self.end_ids, min(params.max_tokens, self.config.max_seq_len - len(p)), self.tokenizer)
            for b, p in enumerate(batch)
        ]
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        if decoder is not None:
            return builders, decoder.run(self, batch[0], params, builders[0], generator)
        return builders, self._decode(batch, params, builders, generator)

    def stream(
        self,
        prompts: list[int] | list[list[int]],
        params: SamplingParams | None = None,
        decoder: Decoder | None = None,
    ) -> Iterator[StreamEvent]:
        """Events as tokens are produced: for each row, one per new token, the last with a finish reason."""
        return self._start(prompts, params, decoder)[1]

    def generate(
        self,
        prompts: list[int] | list[list[int]],
        params: SamplingParams | None = None,
        decoder: Decoder | None = None,
    ) -> list[Completion]:
        """One Completion per prompt (a single prompt may be given as a flat list of ids)."""
        builders, events = self._start(prompts, params, decoder)
        t0 = time.perf_counter()
        for _ in events:
            pass
        elapsed = time.perf_counter() - t0
        out = [b.completion() for b in builders]
        for c in out:
            c.stats["seconds"] = elapsed
        return out

    @torch.inference_mode()
    def _decode(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        builders: list[CompletionBuilder],
        generator: torch.Generator | None,
    ) -> Iterator[StreamEvent]:
        B = len(prompts)
        lengths = torch.tensor([len(p) for p in prompts])  # (B,)
        cache = self.new_cache(B, int(lengths.max()) + params.max_tokens)
        seen = seen_mask(prompts, self.config.vocab_size) if params.repetition_penalty != 1.0 else None
        logits = prefill(self.model, cache, prompts)  # (B, V)
        positions = lengths.clone()  # where each row's next token goes
        while True:
            nxt = sample(logits, params, seen, generator)  # (B,)
            for b in range(B):
                ev = builders[b].push(int(nxt[b]))
                if ev is not None:
                    yield ev
            if all(bl.finished for bl in builders):
                return
            if seen is not None:
                seen[torch.arange(B), nxt] = True
            logits = decode_step(self.model, cache, nxt, positions)
            # A row that finished early keeps stepping with the batch; park it on its last slot.
            positions = (positions + 1).clamp_(max=cache.capacity - 1)
