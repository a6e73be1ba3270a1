"""The prepared-data directory: token shards (raw uint16/uint32 arrays) plus `data.json`.

    DIR/
      data.json          format version, source, tokenizer fingerprint, dtype, and per split
                         the shard files with their token counts, documents and UTF-8 bytes
      tokenizer.json     the tokenizer the ids belong to
      train_0000.bin ... raw little-endian token ids, readable with numpy.memmap
      val_0000.bin

Each document is stored as `<|endoftext|>` followed by its tokens, so the model sees where
documents start. This module knows the file format (writing and memory-mapping it); it
knows nothing about batching or models.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm.errors import DataError
from llm.tokenizer import TOKENIZER_FILE, Tokenizer

__all__ = ["DATA_FILE", "FORMAT_VERSION", "SplitWriter", "PreparedData", "tokenizer_fingerprint", "token_dtype"]

DATA_FILE = "data.json"
FORMAT_VERSION = 1


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (vocabularies up to 65,536), else uint32: half the disk and page cache."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def tokenizer_fingerprint(tok: Tokenizer) -> str:
    """A short hash of what decides the ids: pattern, ranks and special tokens."""
    h = hashlib.sha256(tok.pattern.encode())
    for token, rank in sorted(tok.mergeable_ranks.items(), key=lambda kv: kv[1]):
        h.update(rank.to_bytes(4, "little") + token)
    h.update(json.dumps(tok.special_tokens, sort_keys=True).encode())
    return h.hexdigest()[:16]


@dataclass
class SplitWriter:
    """Appends documents' token ids to `<split>_NNNN.bin` files of at most `shard_tokens` ids each."""

    directory: Path
    split: str
    dtype: np.dtype
    shard_tokens: int
    shards: list[dict[str, Any]] = field(default_factory=list)
    documents: int = 0
    bytes: int = 0
    _fh: Any = None
    _in_shard: int = 0

    def add(self, ids: np.ndarray, n_bytes: int) -> None:
        """Write one document's ids (already starting with the separator); it may span shards."""
        self.documents += 1
        self.bytes += n_bytes
        pos = 0
        while pos < len(ids):
            if self._fh is None or self._in_shard == self.shard_tokens:
                self._open_next()
            take = min(len(ids) - pos, self.shard_tokens - self._in_shard)
            self._fh.write(ids[pos : pos + take].astype(self.dtype, copy=False).tobytes())
            self._in_shard += take
            self.shards[-1]["tokens"] = self._in_shard
            pos += take

    def _open_next(self) -> None:
        self.close()
        name = f"{self.split}_{len(self.shards):04d}.bin"
        self._fh = open(self.directory / name, "wb")
        self._in_shard = 0
        self.shards.append({"file": name, "tokens": 0})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards)

    def summary(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "documents": self.documents, "bytes": self.bytes, "shards": self.shards}


@dataclass
class PreparedData:
    """A prepared-data directory opened for reading: shards as read-only memmaps."""

    path: Path
    meta: dict[str, Any]
    tokenizer: Tokenizer
    train: list[np.ndarray]
    val: list[np.ndarray]

    @classmethod
    def open(cls, path: str | Path) -> "PreparedData":
        path = Path(path)
        hint = "create it with `llm data prepare SOURCE --tokenizer TOK --out DIR`"
        if not path.exists():
            raise DataError(f"data directory {path} does not exist; {hint}")
        meta_file = path / DATA_FILE
        if not meta_file.exists():
            raise DataError(f"{path} is not a prepared data directory (no {DATA_FILE}); {hint}")
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_file}: corrupt JSON ({exc.msg}); prepare the data again") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{meta_file}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}; "
                "prepare the data again"
            )
        tokenizer = Tokenizer.load(path / TOKENIZER_FILE)
        if tokenizer_fingerprint(tokenizer) != meta["tokenizer_fingerprint"]:
            raise DataError(
                f"{path / TOKENIZER_FILE} is not the tokenizer the shards were made with "
                f"(fingerprint {tokenizer_fingerprint(tokenizer)} != {meta['tokenizer_fingerprint']} in {meta_file})"
            )
        dtype = np.dtype(meta["dtype"])
        splits = {}
        for split in ("train", "val"):
            arrays = []
            for shard in meta[split]["shards"]:
                f = path / shard["file"]
                expected = shard["tokens"] * dtype.itemsize
                if not f.exists() or f.stat().st_size != expected:
                    raise DataError(f"{f}: missing or truncated (expected {expected} bytes); prepare the data again")
                if shard["tokens"]:
                    arrays.append(np.memmap(f, dtype=dtype, mode="r"))
            splits[split] = arrays
        return cls(path, meta, tokenizer, splits["train"], splits["val"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def tokens(self, split: str) -> int:
        return int(self.meta[split]["tokens"])
