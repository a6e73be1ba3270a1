"""What SFT and DPO share: the starting checkpoint, LoRA, the split, the row order, the step count.

- `start_model(cfg)` loads the checkpoint to fine-tune (a path or a pulled name; float only:
  a quantized checkpoint is refused with the way out) and, when `lora.rank > 0`, freezes it
  and adds adapters; the returned config records the adapter.
- `split_rows` holds back a seeded share of rows for validation.
- `RowOrder` maps a global sample index to a row: a fresh seeded permutation every epoch,
  so the data order is a function of (seed, samples seen) and resuming needs one integer.

This module knows checkpoints and rows; the losses live in `sft.py` and `dpo.py`.
"""

from __future__ import annotations

import math
import random
import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from llm.chat_template import ChatTemplate
from llm.checkpoint import Checkpoint, load_checkpoint, load_config
from llm.config import AdapterConfig, ModelConfig
from llm.errors import CheckpointError, ConfigError
from llm.hub import resolve_model
from llm.lora import apply_lora
from llm.train.config import TrainConfig
from llm.train.loop import RunResult

__all__ = ["StartModel", "start_model", "split_rows", "RowOrder", "finetune_steps", "peak_rss_mb", "template_of",
           "default_run_name", "merge_checkpoint", "fit_and_summarise"]


@dataclass
class StartModel:
    ck: Checkpoint
    config: ModelConfig  # the config to save: the base's, plus the adapter block under LoRA
    source: str  # the checkpoint as the user named it
    trainable: int
    total: int


def start_model(cfg: TrainConfig, stage: str) -> StartModel:
    if not cfg.model.checkpoint:
        raise ConfigError(f"{stage} needs a starting checkpoint: pass --model CKPT_OR_NAME (= model.checkpoint)")
    path = resolve_model(cfg.model.checkpoint)
    load_config(path)  # a clear error for a missing or half-written directory
    from llm.infer.quantized_checkpoint import is_quantized_checkpoint

    if is_quantized_checkpoint(path):
        raise CheckpointError(
            f"{path} is a quantized checkpoint; fine-tune its float parent instead (see parent in its meta.json), "
            "then quantize the result with llm quantize"
        )
    ck = load_checkpoint(path, dtype="float32")  # weights and optimizer state in float32; bf16 is autocast
    model = ck.model
    config = ck.config
    if cfg.lora.rank > 0:
        try:
            adapter = AdapterConfig(rank=cfg.lora.rank, alpha=cfg.lora.alpha, targets=cfg.lora.targets, base=str(path))
        except ValueError as exc:
            raise ConfigError(f"lora: {str(exc).splitlines()[-1].strip()}") from exc
        apply_lora(model, adapter)
        config = config.model_copy(update={"adapter": adapter})
    if cfg.train.seq_len > config.max_seq_len:
        raise ConfigError(f"train.seq_len={cfg.train.seq_len} exceeds the model's max_seq_len {config.max_seq_len}")
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return StartModel(ck=ck, config=config, source=str(cfg.model.checkpoint), trainable=trainable, total=total)


def template_of(config: ModelConfig) -> ChatTemplate:
    return ChatTemplate(config.chat_template, config.default_system)


def split_rows(rows: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, val): a seeded shuffle, then `val_fraction` of rows (at least one when there are 10+) held back."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = int(len(rows) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(rows) >= 10:
        n_val = 1
    val = [rows[i] for i in sorted(order[:n_val])]
    train = [rows[i] for i in sorted(order[n_val:])]
    return train, val


class RowOrder:
    """Global sample index -> row index: a seeded permutation per epoch."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._cache: dict[int, list[int]] = {}

    def __call__(self, index: int) -> int:
        epoch, i = divmod(index, self.n)
        perm = self._cache.get(epoch)
        if perm is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
            self._cache = {epoch: perm}
        return perm[i]

    def rows(self, first: int, size: int) -> list[int]:
        return [self(first + j) for j in range(size)]


def finetune_steps(cfg: TrainConfig, n_rows: int, world: int) -> int:
    """train.epochs over the rows when set, else train.max_steps."""
    t = cfg.train
    if t.epochs is not None:
        return max(1, math.ceil(t.epochs * n_rows / (t.batch_size * t.grad_accum * world)))
    if t.max_steps is None:
        raise ConfigError("set train.epochs or train.max_steps")
    return t.max_steps


def fit_and_summarise(loop, run) -> "RunResult":
    """Resume if possible, train, close the run, and add the peak RSS to the summary (SFT and DPO)."""
    loop.resume_if_possible()
    try:
        result = loop.fit()
    finally:
        if run is not None:
            run.close()
    result.summary["peak_rss_mb"] = peak_rss_mb()
    if run is not None:
        run.write_summary(result.summary)
    return result


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def default_run_name(stage: str, checkpoint: str | None) -> str:
    base = Path(str(checkpoint or "model")).name
    return f"{stage}-{base}"


def merge_checkpoint(src: str | Path, out: str | Path) -> Path:
    """`llm lora merge`: the adapter folded into the base weights, written as a plain checkpoint."""
    from llm.checkpoint import make_meta, save_checkpoint

    src = Path(src)
    config = load_config(src)
    if config.adapter is None:
        raise CheckpointError(f"{src} has no LoRA adapter (no adapter block in config.json); it is already plain")
    ck = load_checkpoint(src)  # merges the adapter
    meta = make_meta("merge", parent=str(src), adapter=config.adapter.model_dump(), base=config.adapter.base)
    return save_checkpoint(out, ck.model, ck.config, ck.tokenizer, meta)
