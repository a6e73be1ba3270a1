"""`llm data …` commands: thin wrappers over `llm.data.prepare_data`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]

data_app = typer.Typer(
    help="Prepare training data: tokenized shards with a validation split.\n\n"
    "Example: llm data prepare stdlib --vocab-size 4096 --out data/stdlib",
    no_args_is_help=True,
)


@data_app.command("prepare")
def prepare(
    source: str = typer.Argument(
        ...,
        help="stdlib | stdlib:json,email | a .txt/.jsonl/.parquet/.csv file or folder | a hub dataset NAME[:CONFIG].",
    ),
    tokenizer: Optional[Path] = typer.Option(
        None, "--tokenizer", "-t", help="tokenizer.json or a checkpoint directory."
    ),
    vocab_size: Optional[int] = typer.Option(
        None, min=260, help="Instead of --tokenizer: train a BPE tokenizer of this size on SOURCE first."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the shards into."),
    val_fraction: float = typer.Option(0.01, help="Share of documents held out for validation."),
    text_field: str = typer.Option("text", help="Record field holding the text (JSONL/Parquet/CSV/hub)."),
    split: str = typer.Option("train", help="Hub dataset split to read."),
    max_docs: Optional[int] = typer.Option(None, min=1, help="Stop after this many documents."),
    force: bool = typer.Option(False, help="Replace OUT if it exists."),
) -> None:
    """Tokenize a text source into uint16/uint32 token shards plus a validation split.

    Example: llm data prepare stdlib --vocab-size 4096 --out data/stdlib
    """
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from llm.data.prepare import prepare_data, train_tokenizer
    from llm.errors import DataError

    if (tokenizer is None) == (vocab_size is None):
        raise DataError("give exactly one of --tokenizer PATH or --vocab-size N (to train one on SOURCE)")
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("tokenizing")

        def show(docs: int, tokens: int) -> None:
            bar.update(task, description=f"tokenizing: {docs:,} documents, {tokens:,} tokens")

        if vocab_size is not None:
            bar.update(task, description=f"training a {vocab_size}-token tokenizer")
            tok = train_tokenizer(source, vocab_size, text_field, split, max_docs)
        meta = prepare_data(
            source,
            tokenizer if tokenizer is not None else tok,
            out,
            val_fraction=val_fraction,
            text_field=text_field,
            split=split,
            max_documents=max_docs,
            force=force,
            on_progress=show,
        )
    typer.echo(
        f"{out}: train {meta['train']['tokens']:,} tokens ({meta['train']['documents']:,} docs), "
        f"val {meta['val']['tokens']:,} tokens, {meta['dtype']}, vocab {meta['vocab_size']}"
    )


@data_app.command("show-mask")
def show_mask(
    file: str = typer.Argument(..., help="SFT or DPO rows: a JSON/JSONL/Parquet file or hub dataset name."),
    index: int = typer.Option(0, "--index", "-i", min=0, help="Row to show (0-based)."),
    fmt: str = typer.Option("messages", "--format", help="messages | sharegpt | alpaca | pairs | hh-rlhf | ultrafeedback."),
    model: str = typer.Option("smollm2-135m-instruct", "--model", "-m", help="Checkpoint whose tokenizer and chat template to use."),
) -> None:
    """Print one rendered example with the supervised tokens (the loss mask) highlighted.

    Example: llm data show-mask runs/synth/sft.jsonl --index 3
    """
    from llm.data.mask_view import show_mask as render

    render(file, index, fmt, model)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the `data` group to the `llm` app."""
    app.add_typer(data_app, name="data")
