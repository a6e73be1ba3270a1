"""One generation stream inside the server: its tokens, sampling options, progress and timings.

A request with `n` choices becomes `n` sequences. The scheduler moves a sequence through
WAITING -> RUNNING -> FINISHED (a preempted one goes back to WAITING and recomputes its
cache later); the model runner appends tokens; the engine reports them. This module holds
state only: it knows nothing about HTTP, the model or the KV cache layout.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from llm.infer.guidance import Guide
from llm.infer.sampling import SamplingParams
from llm.infer.stop_strings import TextStream

__all__ = ["SamplingOptions", "Status", "Sequence", "TokenLogprobs", "SequenceOutput"]


@dataclass(frozen=True)
class SamplingOptions:
    """How one sequence picks its tokens (`params`, shared with `llm.infer`) plus what only the server needs."""

    params: SamplingParams
    logprobs: int | None = None  # None: off; k >= 0: the chosen token's logprob plus the top k alternatives
    # Tokens the reply must start with (e.g. "<tool_call>" when a tool call is required): taken
    # instead of sampled, then the model continues from them.
    forced_prefix: tuple[int, ...] = ()
    # A grammar the reply must follow (guided decoding), at its start; every sequence
    # advances its own copy. None: unconstrained, and the sampler never looks at a mask.
    guide: Guide | None = None

    @property
    def max_tokens(self) -> int:
        return self.params.max_tokens

    @property
    def greedy(self) -> bool:
        return self.params.greedy


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass
class TokenLogprobs:
    """Log-probability of a generated token and of the most likely alternatives at that step."""

    token: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass
class SequenceOutput:
    """What one engine step produced for one sequence (several tokens when a draft was accepted)."""

    seq_id: int
    index: int  # the choice index within its request
    token_ids: list[int]
    text: str
    logprobs: list[TokenLogprobs]
    finished: bool
    finish_reason: str | None = None  # "stop" | "length" | "abort" | "error"
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose keys/values came from the prefix cache
    error: str | None = None


@dataclass(eq=False)
class Sequence:
    seq_id: int
    index: int
    prompt: list[int]
    options: SamplingOptions
    text: TextStream
    sink: Callable[[SequenceOutput], None]  # called from the engine thread with every output
    end_ids: frozenset[int] = frozenset()  # ids that end the reply (not part of its text)
    output: list[int] = field(default_factory=list)
    status: Status = Status.WAITING
    num_computed: int = 0  # leading tokens whose keys/values are in the KV cache
    cached_tokens: int = 0  # of those, found in the prefix cache when first admitted
    finish_reason: str | None = None
    generator: torch.Generator | None = None
    guide: Guide | None = None  # this sequence's position in options.guide's grammar
    arrival: float = field(default_factory=time.perf_counter)
    first_scheduled: float | None = None
    first_token: float | None = None
    last_token: float | None = None

    def __post_init__(self) -> None:
        seed = self.options.params.seed
        if seed is not None and not self.options.greedy:
            # 64-bit wrap: OpenAI seeds are signed, torch wants a non-negative 64-bit integer.
            self.generator = torch.Generator().manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
        if self.options.guide is not None:
            self.guide = self.options.guide.fork()

    @property
    def tokens(self) -> list[int]:
        return self.prompt + self.output

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.output)

    @property
    def uncomputed(self) -> int:
        """Tokens still to feed through the model; 1 means the sequence is decoding."""
        return self.length - self.num_computed

    @property
    def forcing(self) -> bool:
        return len(self.output) < len(self.options.forced_prefix)

    @property
    def finished(self) -> bool:
        return self.status is Status.FINISHED
