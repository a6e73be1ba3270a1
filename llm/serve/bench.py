"""`llm bench serve`: load-test an OpenAI-compatible server with streamed chat completions.

For each concurrency level, `requests` streamed chat completions (usage included; cycling
through built-in prompts or the `--prompt`s given) are sent with at most `concurrency` in
flight. Reported per level: aggregate generated tokens
per second (completion tokens of all requests / wall time of the level), time to first
token and inter-token latency percentiles (from the arrival times of content chunks), the
p50 request latency and the error count. With `--model` instead of `--url` the command
starts `llm serve` itself on a free port and stops it afterwards.

Talks HTTP only (httpx, httpx-sse for the event stream), so it measures any server: ours, vLLM, llama.cpp's, Ollama.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import httpx
import numpy as np
from httpx_sse import EventSource, aconnect_sse

from llm.errors import ConfigError, InferenceError

__all__ = [
    "BenchConfig", "LevelResult", "run_bench", "measure_level", "started_server", "served_model", "rss_mb", "percentile",
    "auth_headers", "sse_chunks",
]

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works to a child.",
    "Describe the water cycle in detail.",
    "Give me a recipe for a simple vegetable soup.",
    "Write a poem about autumn in the city.",
    "What are the main causes of the seasons on Earth?",
    "Tell me about the history of the printing press.",
    "How do bees make honey?",
]


@dataclass
class BenchConfig:
    url: str | None = None
    model: str | None = None
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 8, 16])
    requests: int = 32
    max_tokens: int = 64
    temperature: float = 0.7
    prompts: list[str] = field(default_factory=lambda: list(PROMPTS))
    api_key: str | None = None
    server_args: list[str] = field(default_factory=list)
    startup_timeout_s: float = 600.0


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    duration_s: float
    generated_tokens: int
    tok_per_s: float
    ttft_p50_s: float | None
    ttft_p99_s: float | None
    itl_p50_s: float | None
    itl_p99_s: float | None
    latency_p50_s: float | None
    server_rss_mb: float | None = None  # after the level, when this command started the server


def run_bench(cfg: BenchConfig, json_out: bool = False) -> dict:
    if (cfg.url is None) == (cfg.model is None):
        raise ConfigError("give exactly one of --url URL (a running server) or --model NAME (start one)")
    if cfg.requests < 1 or cfg.max_tokens < 1:
        raise ConfigError("--requests and --max-tokens must be at least 1")
    if not cfg.prompts:
        raise ConfigError("give at least one --prompt (or none, for the built-in prompts)")
    with started_server(cfg) as (url, pid):
        model = served_model(url, cfg.api_key)
        asyncio.run(_warm_up(url, model, cfg))
        levels = []
        for c in cfg.concurrency:
            levels.append(asyncio.run(measure_level(url, model, cfg, c)))
            levels[-1].server_rss_mb = rss_mb(pid)
    report = {
        "url": url if cfg.url else None,
        "model": model,
        "max_tokens": cfg.max_tokens,
        "temperature": cfg.temperature,
        "requests_per_level": cfg.requests,
        "levels": [asdict(r) for r in levels],
    }
    if json_out:
        print(json.dumps(report))
    else:
        _print_table(report)
    return report


async def measure_level(url: str, model: str, cfg: BenchConfig, concurrency: int) -> LevelResult:
    ttfts: list[float] = []
    gaps: list[float] = []
    latencies: list[float] = []
    counts = {"n": 0, "errors": 0}
    gate = asyncio.Semaphore(concurrency)

    async def worker(client: httpx.AsyncClient, i: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            if await _one(client, url, model, cfg, i, counts, ttfts, gaps):
                latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    async with _client(concurrency) as client:
        await asyncio.gather(*(worker(client, i) for i in range(cfg.requests)))
    duration = time.perf_counter() - start
    return LevelResult(
        concurrency=concurrency,
        requests=cfg.requests,
        errors=counts["errors"],
        duration_s=round(duration, 3),
        generated_tokens=counts["n"],
        tok_per_s=round(counts["n"] / duration, 2),
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p99_s=percentile(ttfts, 99),
        itl_p50_s=percentile(gaps, 50),
        itl_p99_s=percentile(gaps, 99),
        latency_p50_s=percentile(latencies, 50),
    )


async def _warm_up(url: str, model: str, cfg: BenchConfig) -> None:
    """One request before measuring, so lazy initialisation on either side is not timed."""
    async with _client(1) as client:
        await _one(client, url, model, cfg, 0, {"n": 0, "errors": 0}, [], [])


def _client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits)


async def _one(client, url, model, cfg: BenchConfig, i: int, counts: dict, ttfts: list, gaps: list) -> bool:
    """One streamed request; appends its TTFT and inter-token gaps; False on any error."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": cfg.prompts[i % len(cfg.prompts)]}],
        "max_tokens": cfg.max_tokens,
        "temperature": cfg.temperature,
        "seed": i,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    last = None
    try:
        chat = f"{url}/v1/chat/completions"
        async with aconnect_sse(client, "POST", chat, json=body, headers=auth_headers(cfg.api_key)) as source:
            if source.response.status_code != 200:
                await source.response.aread()
                counts["errors"] += 1
                return False
            async for data in sse_chunks(source):
                if "error" in data:
                    counts["errors"] += 1
                    return False
                if data.get("usage"):
                    counts["n"] += data["usage"]["completion_tokens"]
                for choice in data.get("choices", []):
                    if choice["delta"].get("content"):
                        now = time.perf_counter()
                        if last is None:
                            ttfts.append(now - t0)
                        else:
                            gaps.append(now - last)
                        last = now
    except (httpx.HTTPError, json.JSONDecodeError, KeyError):
        counts["errors"] += 1
        return False
    return True


@contextmanager
def started_server(cfg: BenchConfig):
    """Yield (base URL, server pid): the given URL (pid None), or an `llm serve` started (and stopped) here."""
    if cfg.url:
        yield cfg.url.rstrip("/"), None
        return
    port = _free_port()
    # --quiet: nobody reads the request lines, and a full stderr pipe would stall the server
    cmd = [sys.executable, "-m", "llm", "serve", "--model", cfg.model, "--port", str(port), "--quiet", *cfg.server_args]
    if cfg.api_key:
        cmd += ["--api-key", cfg.api_key]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, cfg.startup_timeout_s)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
            raise InferenceError(f"llm serve exited with code {proc.returncode}: {err[-1] if err else 'no output'}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise InferenceError(f"llm serve did not become healthy within {timeout:.0f} s")


def served_model(url: str, api_key: str | None) -> str:
    try:
        r = httpx.get(f"{url}/v1/models", headers=auth_headers(api_key), timeout=30.0)
        r.raise_for_status()
        return r.json()["data"][0]["id"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        raise InferenceError(f"cannot list models at {url}/v1/models: {exc}") from exc


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a local process (Linux /proc), None elsewhere."""
    try:
        with open(f"/proc/{pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, TypeError, ValueError):
        return None
    return round(kb / 1024, 1)


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def sse_chunks(source: EventSource) -> AsyncIterator[dict]:
    """The JSON objects of a streamed completion's `data:` events, up to `[DONE]`."""
    async for event in source.aiter_sse():
        if event.data == "[DONE]":
            return
        yield event.json()


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile of `values` (the nearest observed value, not an interpolation), None if empty."""
    if not values:
        return None
    return round(float(np.percentile(values, p, method="nearest")), 4)


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"llm bench serve: {report['model']}, {report['max_tokens']} tokens per streamed chat completion")
    cols = ("concurrency", "requests", "errors", "tok/s", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "latency p50")
    cols += ("RSS MB",)
    for col in cols:
        table.add_column(col, justify="right")

    def s(v):
        return "-" if v is None else f"{v:.3f}s"

    for r in report["levels"]:
        table.add_row(
            str(r["concurrency"]), str(r["requests"]), str(r["errors"]), f"{r['tok_per_s']:.1f}",
            s(r["ttft_p50_s"]), s(r["ttft_p99_s"]), s(r["itl_p50_s"]), s(r["itl_p99_s"]), s(r["latency_p50_s"]),
            "-" if r["server_rss_mb"] is None else f"{r['server_rss_mb']:.0f}",
        )
    # A pipe or log file gets the whole table rather than an 80-column squeeze.
    Console(width=None if sys.stdout.isatty() else 160).print(table)
