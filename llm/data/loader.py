"""Batches of token windows from prepared shards, addressed by a global sample index.

The training split is cut into non-overlapping windows of `seq_len + 1` tokens (inputs and
next-token targets). Sample `i` is window `perm_e[i mod W]` of epoch `e = i div W`, where
`perm_e` is a seeded permutation of the W windows. So the whole data order is a pure
function of (seed, sample index): resuming needs only the number of samples consumed, and
a global batch is the same set of windows however it is split into micro-batches and ranks
(accumulation 4 x batch 2 == batch 8; 2 ranks x accumulation 1 == 1 rank x accumulation 2).

This module knows shards and indices; it knows nothing about models or optimizers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from llm.data.shards import PreparedData
from llm.errors import DataError, TokenizerError

__all__ = ["TokenWindows", "token_byte_lengths"]


class TokenWindows:
    """Windows of `seq_len + 1` tokens over the train split (shuffled per epoch) and the val split (in order)."""

    def __init__(self, data: PreparedData, seq_len: int, seed: int) -> None:
        self.data, self.seq_len, self.seed = data, seq_len, seed
        self._train = self._index(data.train, "train")
        self._val = self._index(data.val, "val")
        self._epoch = -1
        self._perm: np.ndarray | None = None

    def _index(self, shards: list[np.ndarray], split: str) -> np.ndarray:
        counts = [max(0, (len(s) - 1) // self.seq_len) for s in shards]
        if sum(counts) == 0:
            longest = max((len(s) for s in shards), default=0)
            raise DataError(
                f"{self.data.path}: the {split} split has no window of seq_len+1 = {self.seq_len + 1} tokens "
                f"(longest shard: {longest} tokens); lower train.seq_len or prepare more data"
            )
        return np.concatenate([[0], np.cumsum(counts)])  # (n_shards + 1,) window offsets per shard

    @property
    def train_windows(self) -> int:
        return int(self._train[-1])

    @property
    def val_windows(self) -> int:
        return int(self._val[-1])

    def _window(self, shards: list[np.ndarray], offsets: np.ndarray, w: int) -> np.ndarray:
        s = int(np.searchsorted(offsets, w, side="right")) - 1
        start = (w - int(offsets[s])) * self.seq_len
        return shards[s][start : start + self.seq_len + 1]

    def _train_window_ids(self, samples: np.ndarray) -> np.ndarray:
        W = self.train_windows
        out = np.empty(len(samples), dtype=np.int64)
        for k, i in enumerate(samples):
            epoch = int(i) // W
            if epoch != self._epoch:
                self._perm = np.random.Generator(np.random.PCG64([self.seed, epoch])).permutation(W)
                self._epoch = epoch
            out[k] = self._perm[int(i) % W]
        return out

    def _stack(
        self, shards: list[np.ndarray], offsets: np.ndarray, windows: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.stack([self._window(shards, offsets, int(w)) for w in windows]).astype(np.int64)  # (B, T+1)
        t = torch.from_numpy(rows)
        return t[:, :-1], t[:, 1:]  # (B, T) inputs, (B, T) targets

    def train_batch(self, first_sample: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (B, T) for samples first_sample .. first_sample + B - 1."""
        samples = np.arange(first_sample, first_sample + batch_size)
        return self._stack(self.data.train, self._train, self._train_window_ids(samples))

    def val_batches(
        self, batch_size: int, max_sequences: int, rank: int = 0, world: int = 1
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The first `max_sequences` val windows in order, in batches; rank r takes every world-th batch.

        The set does not depend on the batch size, so runs with different batch shapes are scored alike.
        """
        n = min(self.val_windows, max_sequences)
        for b, start in enumerate(range(0, n, batch_size)):
            if b % world == rank:
                yield self._stack(self.data.val, self._val, np.arange(start, min(start + batch_size, n)))


def token_byte_lengths(data: PreparedData, vocab_size: int) -> torch.Tensor:
    """UTF-8 length of each token id (0 for special tokens), for bits-per-byte; (V,) int64."""
    tok = data.tokenizer
    special = set(tok.special_tokens.values())
    lengths = torch.zeros(vocab_size, dtype=torch.int64)
    for i in range(min(tok.vocab_size, vocab_size)):
        if i in special:
            continue
        try:
            lengths[i] = len(tok.id_to_bytes(i))
        except TokenizerError:  # a hole in an imported vocabulary: that id never occurs in the data
            continue
    return lengths
