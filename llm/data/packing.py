"""Chat rows to training tensors: render with the shared ChatML renderer, pack best-fit, batch.

Each example is rendered once (`render_chat` gives ids and the assistant-only loss mask).
With packing, examples are placed into rows of `seq_len` tokens by best-fit decreasing
(each example goes into the fullest row it still fits), and every row carries `doc_ids`
and `positions` that restart per example so the model attends within one example only.
Without packing, each example is its own row, padded to the longest row of its batch.

Targets are next tokens inside the same example, -1 where the mask is 0, at the last token
of an example and on padding. This module knows tokens and tensors, not models.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from llm.chat_template import ChatTemplate, render_chat
from llm.tokenizer import Tokenizer

__all__ = ["Example", "SFTBatch", "render_examples", "pack_best_fit", "PackedRows"]


@dataclass
class Example:
    ids: list[int]
    mask: list[int]  # 1 where the token is a target the loss covers
    truncated: bool = False

    @property
    def n_targets(self) -> int:
        return sum(self.mask[1:])


@dataclass
class SFTBatch:
    inputs: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T), -1 = ignore
    positions: torch.Tensor | None  # (B, T), restarting at 0 per example; None = 0..T-1
    doc_ids: torch.Tensor | None  # (B, T), one id per example in the row; None = one example per row

    @property
    def n_targets(self) -> int:
        return int((self.targets != -1).sum())


def render_examples(
    tok: Tokenizer, rows: list[dict], template: ChatTemplate, max_len: int
) -> list[Example]:
    """Render `{"messages", "tools"}` rows; an example longer than `max_len` is cut (and marked)."""
    out = []
    for row in rows:
        ids, mask = render_chat(tok, row["messages"], row.get("tools"), template=template)
        truncated = len(ids) > max_len
        out.append(Example(ids[:max_len], mask[:max_len], truncated))
    return out


def pack_best_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of example indices, best-fit decreasing: each example goes where the least room is left."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (room left, bin index)
    for i in order:
        need = lengths[i]
        k = bisect.bisect_left(free, (need, -1))
        if k < len(free):
            room, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (room - need, b))
        else:
            bins.append([i])
            bisect.insort(free, (capacity - need, len(bins) - 1))
    return bins


class PackedRows:
    """Training rows over rendered examples: packed into `seq_len` or one example per row."""

    def __init__(self, examples: list[Example], seq_len: int, packing: bool, pad_id: int) -> None:
        self.examples, self.seq_len, self.packing, self.pad_id = examples, seq_len, packing, pad_id
        if packing:
            self.rows = pack_best_fit([len(e.ids) for e in examples], seq_len)
        else:
            self.rows = [[i] for i in range(len(examples))]

    def __len__(self) -> int:
        return len(self.rows)

    def n_targets(self) -> int:
        return sum(e.n_targets for e in self.examples)

    def batch(self, row_indices: list[int]) -> SFTBatch:
        length = self.seq_len if self.packing else max(
            sum(len(self.examples[i].ids) for i in self.rows[r]) for r in row_indices
        )
        B = len(row_indices)
        inputs = torch.full((B, length), self.pad_id, dtype=torch.long)
        targets = torch.full((B, length), -1, dtype=torch.long)
        positions = torch.zeros((B, length), dtype=torch.long)
        doc_ids = torch.full((B, length), -1, dtype=torch.long)
        for b, r in enumerate(row_indices):
            at = 0
            for d, i in enumerate(self.rows[r]):
                ex = self.examples[i]
                n = len(ex.ids)
                ids = torch.tensor(ex.ids, dtype=torch.long)
                inputs[b, at : at + n] = ids
                tgt = ids[1:].masked_fill(torch.tensor(ex.mask[1:]) == 0, -1)
                targets[b, at : at + n - 1] = tgt
                positions[b, at : at + n] = torch.arange(n)
                doc_ids[b, at : at + n] = d
                at += n
        if not self.packing:
            # One example per row, padded on the right: plain causal attention already keeps the
            # padding out of every real token's view, and it takes the fast SDPA path.
            return SFTBatch(inputs, targets, None, None)
        return SFTBatch(inputs, targets, positions, doc_ids)
