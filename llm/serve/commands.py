"""The `llm serve`, `llm bench serve` and `llm bench hostile` commands: parse options, call one library function."""

from __future__ import annotations

from typing import Optional

import typer

from llm.errors import ConfigError

__all__ = ["register"]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    bench_app.command("serve")(bench_serve_cmd)
    bench_app.command("hostile")(bench_hostile_cmd)


def serve_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint directory or pulled model name."),
    port: int = typer.Option(8000, help="TCP port."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 exposes the server to the network)."),
    served_model_name: Optional[str] = typer.Option(None, help="Name clients pass as `model` (default: --model)."),
    api_key: Optional[str] = typer.Option(None, envvar="LLM_API_KEY", help="Require `Authorization: Bearer KEY`."),
    quantize: Optional[int] = typer.Option(None, help="Weight-only quantization: 8 or 4 bits."),
    draft: Optional[str] = typer.Option(None, help="Draft model for speculative decoding of a lone stream."),
    prompt_lookup: bool = typer.Option(False, help="Speculate from n-grams of the context (no draft model)."),
    num_speculative_tokens: int = typer.Option(4, help="Tokens proposed per speculative step."),
    max_batch: int = typer.Option(16, help="Sequences decoded together per step."),
    max_queue: int = typer.Option(256, help="Waiting sequences before new requests get 429."),
    kv_blocks: Optional[int] = typer.Option(None, help="KV cache blocks (default: from --kv-memory-mb)."),
    kv_memory_mb: int = typer.Option(512, help="KV cache budget in MiB when --kv-blocks is not given."),
    block_size: int = typer.Option(16, help="Tokens per KV block."),
    max_model_len: Optional[int] = typer.Option(None, help="Context limit in tokens (default: the model's)."),
    max_prefill_tokens: int = typer.Option(
        64, help="Prompt tokens computed per engine step (chunked prefill; smaller = earlier first tokens)."
    ),
    prefill_dtype: str = typer.Option(
        "float32", help="bfloat16: prompt chunks of 32+ tokens through bf16 GEMMs, faster on CPUs with bf16 units."
    ),
    prefix_cache: bool = typer.Option(
        True, help="Reuse the KV blocks of prompt prefixes seen before (agents resend their whole conversation)."
    ),
    dtype: Optional[str] = typer.Option(None, help="float32 | bfloat16 (default: the checkpoint's)."),
    max_body_mb: float = typer.Option(8.0, help="Largest request body in MiB; bigger ones get HTTP 413."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    guided_tools: bool = typer.Option(
        False, help="With tool_choice auto, constrain every <tool_call> block the model starts to a valid call."
    ),
    log_level: str = typer.Option(
        "info", help="debug | info | warning | error; info logs start-up and one line per finished request."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors (= --log-level warning)."),
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API with continuous batching.

    Logs one line per finished request to stderr (id, prompt/cached/completion tokens, time to
    first token, total time, finish reason); --quiet turns them off.

    Example: llm serve --model smollm2-135m-instruct --port 8000
    """
    options = dict(locals())
    from llm.serve.config import ServeConfig
    from llm.serve.server import serve

    serve(_config(ServeConfig, options))


def bench_serve_cmd(
    url: Optional[str] = typer.Option(None, help="Base URL of a running server, e.g. http://127.0.0.1:8000."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Start a server for this model instead of --url."),
    concurrency: Optional[str] = typer.Option(
        None, help="Comma-separated concurrency levels (default 1,4,8,16; with --agent-trace 1,4)."
    ),
    requests: int = typer.Option(32, help="Requests per concurrency level."),
    max_tokens: Optional[int] = typer.Option(None, help="Tokens generated per request (default 64; agent steps 32)."),
    temperature: Optional[float] = typer.Option(
        None, min=0.0, help="Sampling temperature (0 = greedy; default 0.7, agent steps 0)."
    ),
    prompt: list[str] = typer.Option([], "--prompt", metavar="TEXT", help="User message to send (repeatable; default: built-in prompts)."),
    agent_trace: bool = typer.Option(
        False, help="Replay multi-step agent conversations instead, with and without the prefix cache (--model)."
    ),
    trace_file: Optional[str] = typer.Option(
        None, help="With --agent-trace: eval trajectory JSONL file or directory to replay (default: synthetic)."
    ),
    conversations: int = typer.Option(4, help="With --agent-trace: conversations per concurrency level."),
    steps: int = typer.Option(8, help="With --agent-trace: steps per conversation."),
    system_tokens: int = typer.Option(1400, help="With --agent-trace: approximate tokens of the system prompt."),
    api_key: Optional[str] = typer.Option(None, envvar="LLM_API_KEY", help="API key of the server."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    server_arg: list[str] = typer.Option(
        [], "--server-arg", metavar="ARG", help="Extra `llm serve` option for --model, e.g. --server-arg=--max-batch=32 (repeatable)."
    ),
) -> None:
    """Load-test a server with streamed chat completions: tok/s, TTFT and inter-token latency per concurrency.

    With --agent-trace: TTFT per step, prefix hit rate and wall time of multi-step agent conversations.

    Example: llm bench serve --model smollm2-135m-instruct --concurrency 1,4,8,16 --requests 32

    Example: llm bench serve --model smollm2-135m-instruct --agent-trace --json
    """
    if agent_trace:
        from llm.serve.bench_agent import AgentTraceConfig, run_agent_trace

        trace_cfg = AgentTraceConfig(
            url=url,
            model=model,
            trace_file=trace_file,
            conversations=conversations,
            steps=steps,
            system_tokens=system_tokens,
            concurrency=_levels(concurrency or "1,4"),
            max_tokens=32 if max_tokens is None else max_tokens,
            temperature=0.0 if temperature is None else temperature,
            api_key=api_key,
            server_args=server_arg,
        )
        run_agent_trace(trace_cfg, json_out=json_out)
        return
    from llm.serve.bench import BenchConfig, run_bench

    cfg = BenchConfig(
        url=url,
        model=model,
        concurrency=_levels(concurrency or "1,4,8,16"),
        requests=requests,
        max_tokens=64 if max_tokens is None else max_tokens,
        temperature=0.7 if temperature is None else temperature,
        api_key=api_key,
        **({"prompts": prompt} if prompt else {}),
        server_args=server_arg,
    )
    run_bench(cfg, json_out=json_out)


def bench_hostile_cmd(
    url: Optional[str] = typer.Option(None, help="Base URL of a running server, e.g. http://127.0.0.1:8000."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Start a server for this model instead of --url."),
    body_mb: float = typer.Option(30.0, help="Size of the oversized chat body in MB."),
    text_mb: float = typer.Option(7.5, help="Size of the /tokenize and chat bodies under the limit, in MB."),
    streams: int = typer.Option(8, help="Ordinary streamed chat completions in flight meanwhile."),
    api_key: Optional[str] = typer.Option(None, envvar="LLM_API_KEY", help="API key of the server."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    server_arg: list[str] = typer.Option([], "--server-arg", metavar="ARG", help="Extra `llm serve` option for --model (repeatable)."),
) -> None:
    """Hostile bodies against a server: /health latency and RSS while big requests and streams are in flight.

    Example: llm bench hostile --model smollm2-135m-instruct --server-arg=--threads=1
    """
    from llm.serve.bench_hostile import HostileConfig, run_hostile

    cfg = HostileConfig(
        url=url, model=model, body_mb=body_mb, text_mb=text_mb, streams=streams, api_key=api_key, server_args=server_arg
    )
    run_hostile(cfg, json_out=json_out)


def _levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--concurrency {text!r}: give comma-separated integers such as 1,4,8,16") from None
    if not levels or min(levels) < 1:
        raise ConfigError(f"--concurrency {text!r}: every level must be at least 1")
    return levels


def _config(cls, values: dict):
    from pydantic import ValidationError

    from llm.config import format_validation_error

    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "llm serve options")) from exc
