"""`llm bench hostile`: does one big request stall a server? /health latency and RSS under hostile bodies.

While `streams` ordinary streamed chat completions run, three hostile requests are sent
at once: a chat body of `body_mb` MB (over any sane body limit), a /tokenize body and a
chat body of `text_mb` MB each (under the default 8 MiB limit; the chat one can never fit
a context). Meanwhile /health is polled every 20 ms. Reported: each hostile request's
status and time, the /health latency p50 / p99 / max, the streams' p50 duration, and the
server's RSS before and after (when this command started the server). With `--model` the
command starts `llm serve` itself, as `llm bench serve` does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

import httpx

from llm.errors import ConfigError
from llm.serve.bench import BenchConfig, auth_headers, percentile, rss_mb, served_model, started_server

__all__ = ["HostileConfig", "run_hostile"]

_POLL_S = 0.02


@dataclass
class HostileConfig:
    url: str | None = None
    model: str | None = None
    body_mb: float = 30.0
    text_mb: float = 7.5
    streams: int = 8
    max_tokens: int = 48
    api_key: str | None = None
    server_args: list[str] = field(default_factory=list)


def run_hostile(cfg: HostileConfig, json_out: bool = False) -> dict:
    if (cfg.url is None) == (cfg.model is None):
        raise ConfigError("give exactly one of --url URL (a running server) or --model NAME (start one)")
    if cfg.body_mb <= 0 or cfg.text_mb <= 0 or cfg.streams < 0:
        raise ConfigError("--body-mb and --text-mb must be positive and --streams at least 0")
    server = BenchConfig(url=cfg.url, model=cfg.model, api_key=cfg.api_key, server_args=cfg.server_args)
    with started_server(server) as (url, pid):
        model = served_model(url, cfg.api_key)
        report = asyncio.run(_measure(url, model, cfg, pid))
    if json_out:
        print(json.dumps(report))
    else:
        _print(report)
    return report


def _chat(model: str, text: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def _measure(url: str, model: str, cfg: HostileConfig, pid: int | None) -> dict:
    headers = {**auth_headers(cfg.api_key), "Content-Type": "application/json"}
    words = int(cfg.text_mb * 1e6 / 5)
    bodies = {  # encoded up front: building 30 MB of JSON must not count as the server's time
        "oversized chat": ("/v1/chat/completions", _encode(_chat(model, "x " * int(cfg.body_mb * 1e6 / 2), max_tokens=4))),
        "big tokenize": ("/tokenize", _encode({"prompt": "word " * words})),
        "big chat": ("/v1/chat/completions", _encode(_chat(model, "word " * words, max_tokens=4))),
    }
    results: dict[str, dict] = {}
    async with httpx.AsyncClient(timeout=600, headers=auth_headers(cfg.api_key)) as client:
        await client.post(f"{url}/v1/chat/completions", json=_chat(model, "Say hi", max_tokens=4))
        rss_before = rss_mb(pid)

        async def hostile(name: str, path: str, data: bytes) -> None:
            t0 = time.perf_counter()
            try:
                status: int | str = (await client.post(f"{url}{path}", content=data, headers=headers)).status_code
            except httpx.HTTPError as exc:  # e.g. the server closed while the body was still going out
                status = type(exc).__name__
            results[name] = {"mb": round(len(data) / 1e6, 2), "status": status, "seconds": round(time.perf_counter() - t0, 3)}

        async def stream(i: int) -> float:
            body = _chat(model, f"Count from 1 to {i + 5}.", max_tokens=cfg.max_tokens, stream=True, temperature=0)
            t0 = time.perf_counter()
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                async for _ in r.aiter_lines():
                    pass
            return time.perf_counter() - t0

        # The probe polls from its own thread, so the senders' work on this loop cannot delay it.
        latencies: list[float] = []
        done = threading.Event()
        probe = threading.Thread(target=_probe, args=(f"{url}/health", latencies, done))
        probe.start()
        try:
            sent = [hostile(n, p, d) for n, (p, d) in bodies.items()]
            durations = (await asyncio.gather(*sent, *(stream(i) for i in range(cfg.streams))))[len(sent) :]
        finally:
            done.set()
            probe.join()
    await asyncio.sleep(1.0)
    rss_after = rss_mb(pid)
    change = round(100 * (rss_after - rss_before) / rss_before, 1) if rss_before and rss_after else None
    return {
        "model": model,
        "hostile": results,
        "streams": cfg.streams,
        "stream_p50_s": percentile(durations, 50),
        "health_polls": len(latencies),
        "health_p50_ms": _ms(percentile(latencies, 50)),
        "health_p99_ms": _ms(percentile(latencies, 99)),
        "health_max_ms": _ms(max(latencies, default=None)),
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_change_pct": change,
    }


def _encode(body: dict) -> bytes:
    return json.dumps(body).encode()


def _probe(url: str, latencies: list[float], done: threading.Event) -> None:
    with httpx.Client(timeout=60) as client:
        while True:  # at least one poll, however fast the hostile requests end
            t0 = time.perf_counter()
            client.get(url)
            latencies.append(time.perf_counter() - t0)
            if done.wait(_POLL_S):
                break


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _print(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"llm bench hostile: {report['model']}, {report['streams']} streams in flight")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, r in report["hostile"].items():
        table.add_row(f"{name} ({r['mb']:g} MB)", f"{r['status']} in {r['seconds']:.2f}s")
    for key in ("stream_p50_s", "health_polls", "health_p50_ms", "health_p99_ms", "health_max_ms",
                "rss_before_mb", "rss_after_mb", "rss_change_pct"):
        table.add_row(key, "-" if report[key] is None else str(report[key]))
    Console().print(table)
