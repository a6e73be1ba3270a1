"""Continuous batching: which sequences run in the next engine step, and with which tokens.

Each step (Yu et al. 2022, "Orca: A Distributed Serving System for Transformer-Based
Generative Models", iteration-level scheduling):

1. every running sequence that is decoding gets one more KV slot; when the pool is out of
   blocks the most recently admitted sequence is preempted (its blocks are freed and it
   goes back to the front of the queue, to recompute its cache when readmitted: vLLM's
   "recompute" preemption),
2. sequences still prefilling, then waiting ones in arrival order, get prompt chunks
   within a per-step token budget (chunked prefill keeps running streams moving while a
   long prompt is read) as long as the batch has room and the pool has blocks; a
   sequence admitted from the queue first takes the cached blocks of the longest prefix
   of its tokens (prefix caching, `llm.infer.block_pool`) and computes only the rest,
3. the plan is handed to the model runner: one batched prefill pass, one batched decode
   pass. After it, full blocks whose keys/values are now computed are registered in the
   cache (`cache_computed`), so a request that shares the prefix can reuse them even while
   this one runs. A sequence that finishes is freed at once, so its slot is reusable next
   step; its registered blocks stay cached until their space is needed.

Knows sequences and KV blocks; nothing about the model's maths or HTTP.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from llm.infer.paged_kv import OutOfBlocks, PagedKVCache
from llm.serve.sequence import Sequence, Status

__all__ = ["Scheduler", "StepPlan"]


@dataclass
class StepPlan:
    prefill: list[tuple[Sequence, int]] = field(default_factory=list)  # (sequence, tokens to compute now)
    decode: list[Sequence] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)
    admitted: list[Sequence] = field(default_factory=list)  # running for the first time

    @property
    def empty(self) -> bool:
        return not self.prefill and not self.decode


class Scheduler:
    def __init__(self, cache: PagedKVCache, max_batch: int, max_prefill_tokens: int) -> None:
        self.cache = cache
        self.max_batch = max_batch
        self.max_prefill_tokens = max_prefill_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # in admission order

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, seq: Sequence) -> None:
        seq.status = Status.WAITING
        self.waiting.append(seq)

    def finish(self, seq: Sequence, reason: str) -> None:
        """Take the sequence out of the batch or queue and give its blocks back."""
        if seq.status is Status.RUNNING:
            self.running.remove(seq)
        elif seq.status is Status.WAITING:
            self.waiting.remove(seq)
        self._release(seq)
        seq.status = Status.FINISHED
        seq.finish_reason = reason

    def cache_computed(self, seq: Sequence) -> None:
        """Register the sequence's full blocks whose keys/values are computed (no-op without prefix caching)."""
        self.cache.cache_computed(seq.seq_id, seq.tokens, seq.num_computed)

    def _release(self, seq: Sequence) -> None:
        self.cache_computed(seq)
        self.cache.free(seq.seq_id)

    def schedule(self) -> StepPlan:
        plan = StepPlan()
        self._grow_decoders(plan)
        self._fill_prefill(plan)
        return plan

    def _grow_decoders(self, plan: StepPlan) -> None:
        for seq in list(self.running):
            if seq.status is not Status.RUNNING or seq.uncomputed != 1:
                continue
            while True:
                try:
                    self.cache.reserve(seq.seq_id, seq.length)
                    plan.decode.append(seq)
                    break
                except OutOfBlocks:
                    victim = self.running[-1]
                    self._preempt(victim, plan)
                    if victim is seq:
                        break

    def _preempt(self, seq: Sequence, plan: StepPlan) -> None:
        self.running.remove(seq)
        self._release(seq)  # its computed blocks stay cached: readmitted, it may find them again
        seq.num_computed = 0
        seq.status = Status.WAITING
        self.waiting.appendleft(seq)
        if seq in plan.decode:
            plan.decode.remove(seq)
        plan.preempted.append(seq)

    def _fill_prefill(self, plan: StepPlan) -> None:
        budget = self.max_prefill_tokens
        for seq in self.running:
            if budget <= 0:
                return
            if seq.uncomputed > 1:
                budget -= self._chunk(seq, budget, plan)
        while self.waiting and budget > 0 and len(self.running) < self.max_batch:
            seq = self.waiting[0]
            if seq in plan.preempted:
                return  # preempted this step for lack of blocks: readmitting it now would thrash
            hit = self.cache.lookup_prefix(seq.tokens)
            cached = len(hit.blocks) * self.cache.block_size
            n = min(seq.length - cached, budget)
            # Cached blocks nobody holds count as free until this sequence takes them.
            need = self.cache.blocks_for(cached + n) - len(hit.blocks) + hit.idle
            # Keep one free block per running sequence so admitting does not force a preemption next step.
            if need + len(self.running) > self.cache.num_free_blocks:
                return
            self.waiting.popleft()
            seq.num_computed = self.cache.adopt(seq.seq_id, hit)
            seq.status = Status.RUNNING
            if seq.first_scheduled is None:
                seq.first_scheduled = time.perf_counter()
                seq.cached_tokens = seq.num_computed
                plan.admitted.append(seq)
            self.running.append(seq)
            budget -= self._chunk(seq, budget, plan)

    def _chunk(self, seq: Sequence, budget: int, plan: StepPlan) -> int:
        """Reserve blocks for the next prompt chunk of `seq` (at most `budget` tokens) and plan it."""
        n = min(seq.uncomputed, budget)
        free_tokens = (self.cache.num_free_blocks * self.cache.block_size) + (
            self.cache.capacity(seq.seq_id) - seq.num_computed
        )
        n = min(n, free_tokens)
        if n <= 0:
            return 0
        self.cache.reserve(seq.seq_id, seq.num_computed + n)
        plan.prefill.append((seq, n))
        return n
