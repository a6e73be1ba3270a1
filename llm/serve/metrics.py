"""Prometheus metrics of the server, in a registry of its own (several servers may share a process).

The engine thread updates them (prometheus-client is thread-safe); `GET /metrics` renders
them. Names follow Prometheus conventions (`_total` counters, `_seconds` histograms).
Knows nothing about HTTP routes or the model.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServeMetrics"]

# Latency buckets from 5 ms to 2 minutes: CPU decode steps take tens of milliseconds, queued
# requests under load wait tens of seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ServeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.running = Gauge("llm_requests_running", "Sequences in the running batch.", registry=r)
        self.waiting = Gauge("llm_requests_waiting", "Sequences waiting to be admitted.", registry=r)
        self.kv_blocks_used = Gauge("llm_kv_blocks_used", "KV cache blocks held by sequences.", registry=r)
        self.kv_blocks_total = Gauge("llm_kv_blocks_total", "KV cache blocks in the pool.", registry=r)
        self.kv_blocks_cached = Gauge(
            "llm_kv_blocks_cached", "KV blocks holding a reusable prefix (in use or idle).", registry=r
        )
        self.kv_blocks_evicted = Counter(
            "llm_kv_blocks_evicted", "Cached KV blocks evicted to make room (least recently used first).", registry=r
        )
        self.prompt_tokens = Counter("llm_prompt_tokens", "Prompt tokens admitted.", registry=r)
        self.prefix_cache_hits = Counter(
            "llm_prefix_cache_hit_tokens", "Admitted prompt tokens found in the prefix cache.", registry=r
        )
        self.prefix_cache_hit_rate = Gauge(
            "llm_prefix_cache_hit_rate", "Prefix cache hit tokens / prompt tokens since start.", registry=r
        )
        self.generation_tokens = Counter("llm_generation_tokens", "Tokens generated.", registry=r)
        self.finished = Counter(
            "llm_sequences_finished", "Sequences finished, by reason.", ["reason"], registry=r
        )
        self.rejected = Counter("llm_requests_rejected", "Requests refused with 429 (queue full).", registry=r)
        self.preemptions = Counter("llm_preemptions", "Sequences preempted for lack of KV blocks.", registry=r)
        self.speculative_proposed = Counter("llm_spec_proposed_tokens", "Draft tokens proposed.", registry=r)
        self.speculative_accepted = Counter("llm_spec_accepted_tokens", "Draft tokens accepted.", registry=r)
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds", "Arrival to first generated token.", buckets=_BUCKETS, registry=r
        )
        self.itl = Histogram(
            "llm_inter_token_latency_seconds", "Time between two generated tokens.", buckets=_BUCKETS, registry=r
        )
        self.e2e = Histogram(
            "llm_e2e_request_latency_seconds", "Arrival to last token.", buckets=_BUCKETS, registry=r
        )
        self.queue_time = Histogram(
            "llm_request_queue_time_seconds", "Arrival to first scheduled.", buckets=_BUCKETS, registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
