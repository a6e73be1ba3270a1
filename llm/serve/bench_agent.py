"""`llm bench serve --agent-trace`: replay multi-step agent conversations; what prefix caching saves.

Each conversation of the trace (`llm.serve.agent_trace`) runs its steps one after the
other, as an agent does; at concurrency c, c conversations run at once. Every step is a
streamed chat completion (`max_tokens`, usage included) whose time to first token (first
content chunk; the finish chunk if there is none) and usage are recorded. Reported per
(server setting, concurrency): total wall time, TTFT at each step (median over
conversations), the step-1 TTFT against the median of later steps, and the prefix hit
rate (`usage.prompt_tokens_details.cached_tokens` / `prompt_tokens`).

With `--model` the command starts `llm serve` twice, with the prefix cache and with
`--no-prefix-cache`, and runs the same trace against both in one run, so the ratios
(wall time, later-step TTFT) compare like with like on a busy machine. Each concurrency
level replays conversations with their own session lines, so nothing is cached across
levels or settings. With `--url` it measures that server as it is.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import httpx
from httpx_sse import aconnect_sse

from llm.errors import ConfigError
from llm.serve.agent_trace import synthetic_trace, trajectory_trace
from llm.serve.bench import BenchConfig, auth_headers, percentile, served_model, sse_chunks, started_server

__all__ = ["AgentTraceConfig", "run_agent_trace"]


@dataclass
class AgentTraceConfig:
    url: str | None = None
    model: str | None = None
    trace_file: str | None = None  # trajectory JSONL file or directory; None: synthetic conversations
    conversations: int = 4
    steps: int = 8
    system_tokens: int = 1400
    concurrency: list[int] = field(default_factory=lambda: [1, 4])
    max_tokens: int = 32
    temperature: float = 0.0
    api_key: str | None = None
    server_args: list[str] = field(default_factory=list)


@dataclass
class StepResult:
    step: int
    ttft_s: float
    prompt_tokens: int
    cached_tokens: int


@dataclass
class TraceRun:
    prefix_cache: bool | None  # None: a server given by --url, setting unknown
    concurrency: int
    conversations: int
    errors: int  # conversations cut short by a failed step
    first_error: str | None
    wall_s: float
    hit_rate: float
    ttft_by_step_s: list[float | None]
    prompt_tokens_by_step: list[int]
    ttft_first_s: float | None
    ttft_later_p50_s: float | None
    later_vs_first: float | None


def run_agent_trace(cfg: AgentTraceConfig, json_out: bool = False) -> dict:
    if (cfg.url is None) == (cfg.model is None):
        raise ConfigError("give exactly one of --url URL (a running server) or --model NAME (start one)")
    if cfg.conversations < 1 or cfg.steps < 1 or cfg.max_tokens < 1:
        raise ConfigError("--conversations, --steps and --max-tokens must be at least 1")
    settings: list[bool | None] = [None] if cfg.url else [True, False]
    runs: list[TraceRun] = []
    model = cfg.model
    for cache_on in settings:
        extra = [] if cache_on in (None, True) else ["--no-prefix-cache"]
        server = BenchConfig(url=cfg.url, model=cfg.model, api_key=cfg.api_key, server_args=cfg.server_args + extra)
        with started_server(server) as (url, _):
            model = served_model(url, cfg.api_key)
            for c in cfg.concurrency:
                trace = _trace(cfg, salt=f"{'on' if cache_on is not False else 'off'}-c{c}-")
                runs.append(asyncio.run(_measure(url, model, cfg, trace, c, cache_on)))
                r = runs[-1]
                print(  # progress on stderr: a full run takes a while without the cache
                    f"prefix cache {_setting_name(cache_on)}, concurrency {c}: wall {r.wall_s:.1f}s, "
                    f"hit rate {r.hit_rate:.1%}, TTFT step 1 {r.ttft_first_s}s, steps 2+ {r.ttft_later_p50_s}s",
                    file=sys.stderr,
                    flush=True,
                )
    report = {
        "model": model,
        "trace": cfg.trace_file or f"synthetic, ~{cfg.system_tokens}-token system prompt",
        "steps": cfg.steps,
        "max_tokens": cfg.max_tokens,
        "runs": [asdict(r) for r in runs],
        "comparison": _compare(runs),
    }
    if json_out:
        print(json.dumps(report))
    else:
        _print_table(report)
    return report


def _setting_name(cache_on: bool | None) -> str:
    return {True: "on", False: "off", None: "server's"}[cache_on]


def _trace(cfg: AgentTraceConfig, salt: str) -> list[list[list[dict]]]:
    if cfg.trace_file:
        return trajectory_trace(cfg.trace_file, cfg.steps, cfg.system_tokens, salt)[: cfg.conversations]
    return synthetic_trace(cfg.conversations, cfg.steps, cfg.system_tokens, salt)


async def _measure(
    url: str, model: str, cfg: AgentTraceConfig, trace: list[list[list[dict]]], concurrency: int, cache_on: bool | None
) -> TraceRun:
    results: list[StepResult] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def conversation(client: httpx.AsyncClient, requests: list[list[dict]]) -> None:
        async with gate:
            for step, messages in enumerate(requests, start=1):
                r = await _step(client, url, model, cfg, messages, step)
                if isinstance(r, str):
                    errors.append(f"step {step}: {r}")
                    return
                results.append(r)

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=httpx.Timeout(900.0), limits=limits, headers=auth_headers(cfg.api_key)) as client:
        await asyncio.gather(*(conversation(client, requests) for requests in trace))
    wall = time.perf_counter() - start
    steps = max((len(r) for r in trace), default=0)
    by_step = [[r for r in results if r.step == s] for s in range(1, steps + 1)]
    ttft = [percentile([r.ttft_s for r in rs], 50) for rs in by_step]
    first = ttft[0] if ttft else None
    later = percentile([r.ttft_s for r in results if r.step > 1], 50)
    prompt = sum(r.prompt_tokens for r in results)
    return TraceRun(
        prefix_cache=cache_on,
        concurrency=concurrency,
        conversations=len(trace),
        errors=len(errors),
        first_error=errors[0] if errors else None,
        wall_s=round(wall, 3),
        hit_rate=round(sum(r.cached_tokens for r in results) / prompt, 4) if prompt else 0.0,
        ttft_by_step_s=ttft,
        prompt_tokens_by_step=[round(statistics.mean(r.prompt_tokens for r in rs)) if rs else 0 for rs in by_step],
        ttft_first_s=first,
        ttft_later_p50_s=later,
        later_vs_first=round(later / first, 3) if first and later else None,
    )


async def _step(
    client: httpx.AsyncClient, url: str, model: str, cfg: AgentTraceConfig, messages: list[dict], step: int
) -> StepResult | str:
    """One streamed request; what went wrong, on any error."""
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": cfg.max_tokens,
        "temperature": cfg.temperature,
        "seed": step,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    ttft, usage = None, None
    try:
        async with aconnect_sse(client, "POST", f"{url}/v1/chat/completions", json=body) as source:
            r = source.response
            if r.status_code != 200:
                return f"HTTP {r.status_code}: {(await r.aread()).decode(errors='replace')[:300]}"
            async for data in sse_chunks(source):
                if "error" in data:
                    return str(data["error"].get("message", data["error"]))[:300]
                usage = data.get("usage") or usage
                for choice in data.get("choices", []):
                    if ttft is None and (choice["delta"].get("content") or choice.get("finish_reason")):
                        ttft = time.perf_counter() - t0
    except (httpx.HTTPError, json.JSONDecodeError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if ttft is None or usage is None:
        return "the stream ended without content or usage"
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return StepResult(step, round(ttft, 4), usage["prompt_tokens"], cached)


def _compare(runs: list[TraceRun]) -> list[dict]:
    """Cache on against off at each concurrency: wall time and later-step TTFT ratios."""
    out = []
    for on in (r for r in runs if r.prefix_cache is True):
        off = next((r for r in runs if r.prefix_cache is False and r.concurrency == on.concurrency), None)
        if off is None or not off.wall_s:
            continue
        ratio = None
        if on.ttft_later_p50_s and off.ttft_later_p50_s:
            ratio = round(on.ttft_later_p50_s / off.ttft_later_p50_s, 3)
        out.append({"concurrency": on.concurrency, "wall_on_vs_off": round(on.wall_s / off.wall_s, 3), "ttft_later_on_vs_off": ratio})
    return out


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    steps = report["steps"]
    table = Table(title=f"llm bench serve --agent-trace: {report['model']}, {report['trace']}, {report['max_tokens']} tokens per step")
    for col in ("prefix cache", "conc.", "errors", "wall", "hit rate", "TTFT step 1", "TTFT 2+ p50", "2+/1"):
        table.add_column(col, justify="right")
    for s in range(1, steps + 1):
        table.add_column(f"s{s}", justify="right")

    def sec(v):
        return "-" if v is None else f"{v:.2f}s"

    for r in report["runs"]:
        table.add_row(
            _setting_name(r["prefix_cache"]), str(r["concurrency"]), str(r["errors"]), sec(r["wall_s"]), f"{r['hit_rate']:.1%}",
            sec(r["ttft_first_s"]), sec(r["ttft_later_p50_s"]),
            "-" if r["later_vs_first"] is None else f"{r['later_vs_first']:.2f}",
            *[sec(v) for v in r["ttft_by_step_s"]] + ["-"] * (steps - len(r["ttft_by_step_s"])),
        )
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    tokens = report["runs"][0]["prompt_tokens_by_step"] if report["runs"] else []
    console.print(f"prompt tokens by step: {tokens}")
    for r in report["runs"]:
        if r["first_error"]:
            console.print(f"first error (prefix cache {r['prefix_cache']}, concurrency {r['concurrency']}): {r['first_error']}")
    for c in report["comparison"]:
        console.print(
            f"concurrency {c['concurrency']}: wall time with the cache = {c['wall_on_vs_off']:.2f}x without; "
            f"TTFT of steps 2+ = {c['ttft_later_on_vs_off']}x"
        )
