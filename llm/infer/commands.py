"""CLI for inference: `llm quantize`, `llm eval ppl`, `llm bench decode|quant|context`.

Thin commands: parse, call one library function, print a table (or one JSON object with
--json). Registered into the `llm` app by `llm.cli._register_subcommands()`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from llm.errors import InferenceError

__all__ = ["register"]


def _print(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = result.get("rows")
    if rows:
        table = Table(title=title)
        for key in rows[0]:
            table.add_column(key, justify="right")
        for row in rows:
            table.add_row(*(str(v) for v in row.values()))
        console.print(table)
        rest = {k: v for k, v in result.items() if k != "rows"}
    else:
        rest = result
    table = Table(title=None if rows else title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for k, v in rest.items():
        table.add_row(k, str(v))
    console.print(table)


def quantize_cmd(
    model: str = typer.Argument(..., help="Float checkpoint path or pulled name, or a .gguf file (keeps its bits)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the quantized checkpoint."),
    bits: Optional[int] = typer.Option(None, help="8 (per output channel) or 4 (group-wise). Not used with a .gguf."),
    group_size: Optional[int] = typer.Option(None, help="Group size: 32, 64 or 128 (int4 default 64; int8 default per channel)."),
    embeddings: bool = typer.Option(True, help="Also quantize the token embedding / output head."),
) -> None:
    """Quantize a checkpoint (weight-only INT8/INT4) into a loadable checkpoint directory.

    Example: llm quantize smollm2-135m-instruct --bits 4 --group-size 64 --out ckpt/smollm2-int4
    """
    from llm.hub import resolve_model
    from llm.infer.quantize import QuantConfig

    if str(model).endswith(".gguf"):
        from llm.infer.gguf_quantized import import_gguf_quantized

        if bits is not None or group_size is not None:
            raise InferenceError("a .gguf file keeps its own quantization; drop --bits/--group-size")
        typer.echo(str(import_gguf_quantized(model, out)))
        return
    from llm.infer.quantized_checkpoint import quantize_checkpoint

    if bits is None:
        raise InferenceError("give --bits 8 or --bits 4")
    typer.echo(str(quantize_checkpoint(resolve_model(model), out, QuantConfig(bits, group_size, embeddings))))


def ppl_cmd(
    model: str = typer.Argument(..., help="Checkpoint path or pulled name (float or quantized)."),
    data: Path = typer.Option(..., "--data", "-d", help="UTF-8 text file to score."),
    context: Optional[int] = typer.Option(None, help="Window length in tokens (default min(512, model maximum))."),
    stride: Optional[int] = typer.Option(None, help="New tokens per window (default half the context)."),
    quant: Optional[int] = typer.Option(None, help="Quantize in memory first: 8 or 4."),
    group_size: Optional[int] = typer.Option(None, help="Group size for --quant."),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 weights."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Bits-per-byte (tokenizer independent) and perplexity of a model on a text file.

    Example: llm eval ppl smollm2-135m-instruct --data notes.txt
    """
    from llm.errors import DataError
    from llm.infer.loading import make_engine
    from llm.infer.bench import load_variant
    from llm.infer.perplexity import evaluate_perplexity

    if not data.is_file():
        raise DataError(f"{data}: no such text file")
    try:
        text = data.read_text()
    except UnicodeDecodeError as exc:
        raise DataError(f"{data}: not UTF-8 text ({exc.reason})") from exc
    ck = load_variant(model, quant, group_size)
    engine = make_engine(ck, dtype)
    result = evaluate_perplexity(engine.model, ck.tokenizer, text, context, stride)
    _print({"model": model, "data": str(data), **result.as_dict()}, as_json, "perplexity")


def bench_decode_cmd(
    model: str = typer.Argument(..., help="Checkpoint path or pulled name."),
    quant: Optional[int] = typer.Option(None, help="Quantize in memory first: 8 or 4."),
    group_size: Optional[int] = typer.Option(None, help="Group size for --quant 4 (32/64/128, default 64)."),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 weights (float matrices)."),
    draft: Optional[str] = typer.Option(None, help="Draft model for speculative decoding (same tokenizer)."),
    prompt_lookup: bool = typer.Option(False, "--prompt-lookup", help="Speculate by copying n-grams from the prompt."),
    gamma: int = typer.Option(4, help="Draft tokens per speculative round."),
    adaptive: bool = typer.Option(False, help="Adapt gamma to the running acceptance rate."),
    tokens: int = typer.Option(128, min=2, help="New tokens per run."),
    context: int = typer.Option(64, min=1, help="Prompt length in tokens (not with --prompt-lookup)."),
    repeats: int = typer.Option(3, min=1, help="Runs per measurement (the median is reported)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: all cores)."),
    vs_transformers: bool = typer.Option(False, "--vs-transformers", help="Also time HF transformers generate()."),
    gguf: Optional[str] = typer.Option(None, help="GGUF file for --vs-transformers (default: the model's source)."),
    prompt_file: Optional[str] = typer.Option(None, help="Text file whose first --context tokens are the prompt."),
    guided: bool = typer.Option(False, "--guided", help="Also time decoding masked by a tool-call grammar."),
    prefill_dtype: str = typer.Option(
        "float32", help="bfloat16: read the prompt through bf16 GEMMs (float32 prefill is timed beside it)."
    ),
    vs_llamacpp: Optional[str] = typer.Option(
        None, "--vs-llamacpp", metavar="GGUF", help="Also time llama.cpp on this GGUF (needs the bench extra)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Prefill/decode tok/s, prefill GFLOP/s against the matmul peak, peak RSS; speculative alpha and speedup;
    ratio vs transformers or llama.cpp; guided cost.

    Example: llm bench decode smollm2-135m-instruct --quant 4 --tokens 128 --vs-transformers
    """
    from llm.infer.bench import bench_decode

    result = bench_decode(
        model, quant, group_size, dtype, draft, prompt_lookup, gamma, adaptive, tokens, context, repeats, threads,
        vs_transformers, gguf, prompt_file, guided=guided, prefill_dtype=prefill_dtype, vs_llamacpp=vs_llamacpp,
    )
    _print(result, as_json, "decode")


def bench_quant_cmd(
    model: str = typer.Argument(..., help="Float checkpoint path or pulled name."),
    data: Optional[str] = typer.Option(None, help="Text for bits-per-byte (default: the bundled English sample)."),
    tokens: int = typer.Option(64, min=2, help="New tokens for the decode timing."),
    group_size: int = typer.Option(64, help="int4 group size."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """fp32 / bf16 / int8 / int4: size, bits-per-byte and decode tok/s side by side.

    Example: llm bench quant smollm2-135m-instruct
    """
    from llm.infer.bench import bench_quant

    result = bench_quant(model, data, tokens, group_size=group_size, threads=threads, on_variant=lambda v: typer.echo(f"measuring {v}...", err=True))
    _print(result, as_json, "quantization")


def bench_context_cmd(
    model: str = typer.Argument(..., help="Checkpoint path or pulled name."),
    contexts: str = typer.Option("32,256,1024", help="Comma-separated context lengths."),
    tokens: int = typer.Option(32, min=2, help="New tokens per measurement with the cache."),
    no_cache_tokens: int = typer.Option(4, min=1, help="New tokens per measurement without the cache."),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 weights."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Decode tok/s at several context lengths, with and without the KV cache.

    Example: llm bench context smollm2-135m-instruct --contexts 32,256,1024
    """
    from llm.infer.bench import bench_context

    try:
        lengths = tuple(int(c) for c in contexts.split(","))
    except ValueError as exc:
        raise InferenceError(f"--contexts must be comma-separated integers, got {contexts!r}") from exc
    result = bench_context(model, lengths, tokens, no_cache_tokens, dtype, threads)
    _print(result, as_json, "context")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `quantize`, `eval ppl` and `bench decode|quant|context` to the `llm` app."""
    app.command("quantize")(quantize_cmd)
    eval_app = next((g.typer_instance for g in app.registered_groups if g.name == "eval"), None)
    if eval_app is None:
        eval_app = typer.Typer(
            help="Evaluate models.\n\nExample: llm eval ppl smollm2-135m-instruct --data notes.txt", no_args_is_help=True
        )
        app.add_typer(eval_app, name="eval")
    eval_app.command("ppl")(ppl_cmd)
    bench_app.command("decode")(bench_decode_cmd)
    bench_app.command("quant")(bench_quant_cmd)
    bench_app.command("context")(bench_context_cmd)
