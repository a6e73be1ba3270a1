"""`llm data prepare`: tokenize a SOURCE into train/val token shards.

Documents are tokenized in batches on a thread pool (tiktoken releases the GIL) and routed
to the validation split by a hash of their index, so the split is the same on every run and
no document is in both splits. A source with too few documents to split that way (say one
big text file) gives the tail of its token stream to validation instead.

The output directory is built under a temporary name and renamed into place at the end
(`llm.atomic.atomic_directory`), so an interrupted prepare never leaves a directory that
looks finished.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from llm.atomic import atomic_directory
from llm.data.shards import (
    DATA_FILE,
    FORMAT_VERSION,
    SplitWriter,
    token_dtype,
    tokenizer_fingerprint,
)
from llm.data.sources import iter_texts, parse_source
from llm.errors import DataError, TokenizerError
from llm.tokenizer import Tokenizer

__all__ = ["prepare_data", "train_tokenizer", "DOC_SEPARATOR"]

DOC_SEPARATOR = "<|endoftext|>"
_BATCH_DOCS = 64


def _is_val(index: int, val_fraction: float) -> bool:
    """A fixed pseudo-random choice per document index (not "every k-th", which could align with the source's order)."""
    h = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=4).digest()
    return int.from_bytes(h, "little") < val_fraction * 2**32


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(texts)
    while batch := list(islice(it, size)):
        yield batch


def prepare_data(
    source: str,
    tokenizer: str | Path | Tokenizer,
    out: str | Path,
    val_fraction: float = 0.01,
    text_field: str = "text",
    split: str = "train",
    max_documents: int | None = None,
    shard_tokens: int = 2**27,
    force: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Tokenize `source` into `out` and return the written `data.json` contents.

    `tokenizer` is a Tokenizer, a tokenizer.json or a checkpoint directory; it is copied to
    `out/tokenizer.json`. `on_progress(documents, tokens)` is called after each batch of documents.
    """
    if not 0.0 < val_fraction < 0.5:
        raise DataError(f"val fraction must be in (0, 0.5), got {val_fraction}")
    out = Path(out)
    if out.exists() and not force:
        raise DataError(f"{out} already exists; pass --force to replace it or choose another --out")
    if isinstance(tokenizer, Tokenizer):
        tok = tokenizer
    else:
        try:
            tok = Tokenizer.load(Path(tokenizer))
        except TokenizerError as exc:
            raise DataError(f"--tokenizer: {exc}") from exc
    try:
        sep = tok.token_id(DOC_SEPARATOR)
    except TokenizerError as exc:
        raise DataError(
            f"--tokenizer {tokenizer}: needs a {DOC_SEPARATOR} special token to separate documents"
        ) from exc
    src = parse_source(source)
    dtype = token_dtype(tok.vocab_size)

    with atomic_directory(out) as tmp:
        writers = {s: SplitWriter(tmp, s, dtype, shard_tokens) for s in ("train", "val")}
        texts = iter_texts(src, text_field=text_field, split=split)
        if max_documents is not None:
            texts = islice(texts, max_documents)
        index = 0
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for batch in _batches(texts, _BATCH_DOCS):
                for text, ids in zip(batch, pool.map(tok.encode, batch)):
                    doc = np.empty(len(ids) + 1, dtype=np.int64)  # (1 + n,) separator then the document
                    doc[0] = sep
                    doc[1:] = ids
                    writers["val" if _is_val(index, val_fraction) else "train"].add(doc, len(text.encode("utf-8")))
                    index += 1
                if on_progress is not None:
                    on_progress(index, writers["train"].tokens + writers["val"].tokens)
        for w in writers.values():
            w.close()
        if index == 0:
            raise DataError(f"{source}: no documents (every record was empty)")
        if writers["val"].tokens == 0 or writers["train"].tokens == 0:
            _split_tail(writers, val_fraction)
        meta = {
            "format_version": FORMAT_VERSION,
            "source": source,
            "source_kind": src.kind,
            "text_field": text_field if src.kind not in ("stdlib", "text") else None,
            "tokenizer_fingerprint": tokenizer_fingerprint(tok),
            "vocab_size": tok.vocab_size,
            "dtype": dtype.name,
            "doc_separator": DOC_SEPARATOR,
            "val_fraction": val_fraction,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "train": writers["train"].summary(),
            "val": writers["val"].summary(),
        }
        tok.save(tmp)
        (tmp / DATA_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def train_tokenizer(
    source: str, vocab_size: int, text_field: str = "text", split: str = "train", max_documents: int | None = None
) -> Tokenizer:
    """A byte-level BPE tokenizer trained on the documents of `source` (what `--vocab-size` does)."""
    texts = iter_texts(source, text_field=text_field, split=split)
    return Tokenizer.train(islice(texts, max_documents) if max_documents else texts, vocab_size)


def _split_tail(writers: dict[str, SplitWriter], val_fraction: float) -> None:
    """Too few documents for a document-level split: move the tail of the token stream to validation."""
    train, val = writers["train"], writers["val"]
    if train.tokens == 0:  # everything hashed to val (a single document with index 0)
        train, val = val, train
        train.split, val.split = "train", "val"
        for shard in train.shards:
            new = shard["file"].replace("val_", "train_", 1)
            os.rename(train.directory / shard["file"], train.directory / new)
            shard["file"] = new
        writers["train"], writers["val"] = train, val
    total = train.tokens
    want = max(math.ceil(total * val_fraction), min(total // 10, 65536))
    last = train.shards[-1]
    take = min(want, last["tokens"] - 1)
    if take < 1:
        raise DataError("the source is too small to hold out any validation tokens; add more text")
    f = train.directory / last["file"]
    arr = np.fromfile(f, dtype=train.dtype)
    tail = arr[-take:]
    with open(f, "r+b") as fh:
        fh.truncate((len(arr) - take) * train.dtype.itemsize)
    last["tokens"] -= take
    moved_bytes = round(train.bytes * take / total)
    train.bytes -= moved_bytes
    val.add(tail.astype(np.int64), moved_bytes)
    val.documents -= 1  # the moved tail is a piece of a training document, not a new one
    val.close()
