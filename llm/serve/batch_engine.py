"""The serving engine: a background thread that steps the scheduler and model runner forever.

Request handlers (on the asyncio event loop) call `submit` with a prompt and one
`SamplingOptions` per choice, and get every `SequenceOutput` through a callback that the
engine thread invokes; `abort` cancels sequences (a client went away) and frees their KV
blocks at the next step. All scheduler and cache state is touched by the engine thread
only: other threads talk to it through a queue, so no lock guards the hot path.

Knows sequences, stop conditions and metrics; nothing about HTTP or the OpenAI format.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Callable

from llm.errors import InferenceError
from llm.infer.block_pool import HashFn, block_hash
from llm.infer.drafters import Drafter
from llm.infer.paged_kv import PagedKVCache
from llm.infer.stop_strings import TextStream
from llm.serve.forward import ServedNet
from llm.serve.metrics import ServeMetrics
from llm.serve.model_runner import ModelRunner, Pick
from llm.serve.scheduler import Scheduler
from llm.serve.sequence import SamplingOptions, Sequence, SequenceOutput
from llm.tokenizer import Tokenizer

__all__ = ["BatchEngine", "QueueFull"]

log = logging.getLogger("llm.serve")


class QueueFull(InferenceError):
    """Too many requests are waiting; the client should retry later (HTTP 429)."""


class BatchEngine:
    def __init__(
        self,
        model: ServedNet,
        tokenizer: Tokenizer,
        *,
        end_ids: set[int],
        kv_blocks: int,
        block_size: int = 16,
        max_model_len: int | None = None,
        max_batch: int = 16,
        max_queue: int = 256,
        max_prefill_tokens: int = 64,
        drafter: Drafter | None = None,
        num_speculative: int = 4,
        metrics: ServeMetrics | None = None,
        prefix_caching: bool = True,
        block_hash: HashFn = block_hash,
    ) -> None:
        self.tokenizer = tokenizer
        self.end_ids = frozenset(end_ids)  # the model's end-of-reply ids
        self.cache = PagedKVCache.for_model(
            model, num_blocks=kv_blocks, block_size=block_size, prefix_caching=prefix_caching, hash_fn=block_hash
        )
        # A sequence must always fit in the pool on its own, or preemption could never make room for it.
        limit = min(max_model_len or model.config.max_seq_len, model.config.max_seq_len)
        self.max_model_len = min(limit, kv_blocks * block_size)
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.scheduler = Scheduler(self.cache, max_batch, max_prefill_tokens)
        self.metrics = metrics or ServeMetrics()
        self.runner = ModelRunner(model, self.cache, tokenizer.vocab_size, drafter, num_speculative, self.metrics)
        self.metrics.kv_blocks_total.set(kv_blocks)
        self._ids = itertools.count()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0  # submitted sequences not yet admitted (guarded by _lock)
        self._running = 0  # read by other threads for admission control
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.error: BaseException | None = None
        self.steps = 0
        self._evictions = 0  # pool evictions already counted in the metrics
        self._prompt_tokens = self._hit_tokens = 0  # admitted prompt tokens, and those found cached

    # ------------------------------------------------------------ any thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="llm-serve-engine", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._inbox.put(("wake", None))
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def capacity(self) -> int:
        """The most sequences the engine holds at once (running plus waiting): a bigger request never fits."""
        return self.max_queue + self.max_batch

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.error is None

    def submit(
        self, prompt: list[int], options: list[SamplingOptions], sink: Callable[[SequenceOutput], None]
    ) -> list[int]:
        """Queue one sequence per options entry; outputs go to `sink` from the engine thread."""
        if not prompt:
            raise InferenceError("the prompt is empty: give at least one token")
        if len(prompt) >= self.max_model_len:
            raise InferenceError(
                f"the prompt has {len(prompt)} tokens but this server's maximum context is {self.max_model_len}"
            )
        with self._lock:
            room = self.max_queue + max(0, self.max_batch - self._running)
            if self._queued + len(options) > room:
                self.metrics.rejected.inc()
                raise QueueFull(
                    f"the server is at capacity ({self._queued} sequences waiting, limit {self.max_queue}); retry later"
                )
            self._queued += len(options)
        seqs = [
            Sequence(
                seq_id=next(self._ids),
                index=i,
                prompt=list(prompt),
                options=opts,
                text=TextStream(self.tokenizer, opts.params.stop),
                sink=sink,
                end_ids=frozenset(opts.params.stop_token_ids) | (frozenset() if opts.params.ignore_eos else self.end_ids),
            )
            for i, opts in enumerate(options)
        ]
        self._inbox.put(("add", seqs))
        return [s.seq_id for s in seqs]

    def abort(self, seq_ids: list[int]) -> None:
        """Cancel sequences (no-op for finished ones); their blocks are freed at the next step."""
        self._inbox.put(("abort", list(seq_ids)))

    # ------------------------------------------------------------ engine thread

    def _loop(self) -> None:
        live: dict[int, Sequence] = {}
        try:
            while not self._stopping:
                self._drain(live, block=not self.scheduler.has_work)
                if self.scheduler.has_work:
                    self._step(live)
        except BaseException as exc:  # noqa: BLE001 - the thread must record why it died
            self.error = exc
            log.exception("engine loop died")
            for seq in list(live.values()):
                self._emit(seq, [], "", [], "error", error=str(exc))
            raise

    def _drain(self, live: dict[int, Sequence], block: bool) -> None:
        while True:
            try:
                kind, payload = self._inbox.get() if block else self._inbox.get_nowait()
            except queue.Empty:
                return
            block = False
            if kind == "add":
                for seq in payload:
                    live[seq.seq_id] = seq
                    self.scheduler.add(seq)
            elif kind == "abort":
                for sid in payload:
                    seq = live.get(sid)
                    if seq is not None and not seq.finished:
                        self._finish(seq, live, [], "", [], "abort")
                self._update_gauges()

    def _step(self, live: dict[int, Sequence]) -> None:
        plan = self.scheduler.schedule()
        self.steps += 1
        if plan.admitted:
            with self._lock:
                self._queued -= len(plan.admitted)
        for seq in plan.admitted:
            self.metrics.queue_time.observe(seq.first_scheduled - seq.arrival)
            self.metrics.prompt_tokens.inc(len(seq.prompt))
            self.metrics.prefix_cache_hits.inc(seq.cached_tokens)
            self._prompt_tokens += len(seq.prompt)
            self._hit_tokens += seq.cached_tokens
        self.metrics.preemptions.inc(len(plan.preempted))
        try:
            picks = self.runner.prefill(plan.prefill) if plan.prefill else {}
            if plan.decode:
                picks.update(self.runner.decode(plan.decode))
        except Exception as exc:  # noqa: BLE001 - one bad batch must not take the server down
            log.exception("engine step failed")
            for seq in [s for s, _ in plan.prefill] + plan.decode:
                if not seq.finished:
                    self._finish(seq, live, [], "", [], "error", error=f"{type(exc).__name__}: {exc}")
            return
        for seq, seq_picks in picks.items():
            self._advance(seq, seq_picks, live)
        for seq in [s for s, _ in plan.prefill] + plan.decode:
            if not seq.finished:
                self.scheduler.cache_computed(seq)
        self._update_gauges()

    def _update_gauges(self) -> None:
        self._running = len(self.scheduler.running)
        self.metrics.running.set(len(self.scheduler.running))
        self.metrics.waiting.set(len(self.scheduler.waiting))
        self.metrics.kv_blocks_used.set(self.cache.num_used_blocks)
        self.metrics.kv_blocks_cached.set(self.cache.num_cached_blocks)
        self.metrics.kv_blocks_evicted.inc(self.cache.pool.evictions - self._evictions)
        self._evictions = self.cache.pool.evictions
        self.metrics.prefix_cache_hit_rate.set(self._hit_tokens / max(1, self._prompt_tokens))

    def _advance(self, seq: Sequence, picks: list[Pick], live: dict[int, Sequence]) -> None:
        """Append the picked tokens, applying stop tokens, stop strings, a completed grammar and length limits."""
        now = time.perf_counter()
        new: list[int] = []
        text, logprobs, reason, error = "", [], None, None
        if seq.first_token is None:
            seq.first_token = now
            self.metrics.ttft.observe(now - seq.arrival)
        else:
            # Several tokens in one step (accepted drafts) share the step's latency.
            for _ in picks:
                self.metrics.itl.observe((now - seq.last_token) / len(picks))
        seq.last_token = now
        for pick in picks:
            seq.output.append(pick.token)
            new.append(pick.token)
            if pick.token in seq.end_ids:
                reason = "stop"  # the stop token is neither text nor reported with logprobs
            else:
                if pick.logprobs is not None:
                    logprobs.append(pick.logprobs)
                text += seq.text.push(pick.token)
                if seq.text.stopped:
                    reason = "stop"
            if reason is None and seq.guide is not None and seq.guide.done:
                # Nothing but an end-of-reply id could follow: end here rather than spend a step on it.
                error = seq.guide.error and f"guided decoding failed: {seq.guide.error}"
                reason = "error" if error else "stop"
            if reason is None and (len(seq.output) >= seq.options.max_tokens or seq.length >= self.max_model_len):
                reason = "length"
            if reason is not None:
                break
        self.metrics.generation_tokens.inc(len(new))
        if reason is None:
            self._emit(seq, new, text, logprobs, None)
        else:
            self._finish(seq, live, new, text, logprobs, reason, error)

    def _finish(
        self,
        seq: Sequence,
        live: dict[int, Sequence],
        new: list[int],
        text: str,
        logprobs: list,
        reason: str,
        error: str | None = None,
    ) -> None:
        if seq.first_scheduled is None:  # never admitted: it still counts as queued
            with self._lock:
                self._queued -= 1
        self.scheduler.finish(seq, reason)
        live.pop(seq.seq_id, None)
        if reason not in ("abort", "error"):
            text += seq.text.finish()
        self.metrics.finished.labels(reason=reason).inc()
        self.metrics.e2e.observe(time.perf_counter() - seq.arrival)
        self._emit(seq, new, text, logprobs, reason, error)

    def _emit(
        self, seq: Sequence, new: list[int], text: str, logprobs: list, reason: str | None, error: str | None = None
    ) -> None:
        seq.sink(
            SequenceOutput(
                seq_id=seq.seq_id,
                index=seq.index,
                token_ids=new,
                text=text,
                logprobs=logprobs,
                finished=reason is not None,
                finish_reason=reason,
                completion_tokens=len(seq.output),
                cached_tokens=seq.cached_tokens,
                error=error,
            )
        )
