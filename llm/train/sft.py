"""Supervised fine-tuning: chat rows -> packed, assistant-only loss -> the shared loop.

`sft(cfg)` loads the rows (`llm.data.chat_data`), renders them with the shared ChatML
renderer (the loss covers assistant text, tool-call blocks and the closing `<|im_end|>`),
packs them best-fit into `train.seq_len` rows whose examples cannot attend to each other,
and hands the loop a batch source, a loss that also counts correct argmax tokens (TRL's
`mean_token_accuracy`), and an evaluator over the held-back rows. Full fine-tune or LoRA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from llm.data.chat_data import load_sft_rows
from llm.data.packing import PackedRows, SFTBatch, render_examples
from llm.errors import DataError
from llm.train.config import TrainConfig, dump_train_config
from llm.train.distributed import DistContext, setup_distributed
from llm.train.finetune import RowOrder, finetune_steps, fit_and_summarise, split_rows, start_model, template_of
from llm.train.flops import flops_per_token, load_matmul_peak
from llm.train.loop import RunResult, TrainLoop
from llm.train.pretrain import schedule_label
from llm.train.run_dir import RunDir

__all__ = ["sft", "sft_loss_sum", "SFT_DEFAULTS", "SFTData", "load_sft_data"]

# A fine-tune wants a far smaller LR than pretraining from scratch; the YAML and overrides win.
SFT_DEFAULTS = [
    "train.lr=5e-5",
    "train.warmup_steps=10",
    "train.weight_decay=0.0",
    "train.batch_size=1",
    "train.seq_len=1024",
    "train.grad_accum=8",
    "train.epochs=1",
    "train.max_steps=null",
    "eval.every=50",
    "checkpoint.every=50",
    "run.log_every=1",
]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DDP wraps the GPT


def sft_loss_sum(model: torch.nn.Module, batch: SFTBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed cross-entropy over supervised tokens, plus the count of correct argmax predictions."""
    device = next(model.parameters()).device
    packed = batch.doc_ids is not None
    hidden, _ = model(
        batch.inputs.to(device),
        positions=batch.positions.to(device) if packed else None,
        doc_ids=batch.doc_ids.to(device) if packed else None,
        hidden_only=True,
    )  # (B, T, D)
    targets = batch.targets.to(device)
    keep = targets != -1  # (B, T)
    logits = _unwrap(model).lm_head(hidden[keep]).float()  # (N, V): the head runs on supervised positions only
    want = targets[keep]
    loss = F.cross_entropy(logits, want, reduction="sum")
    correct = (logits.argmax(-1) == want).sum().float()
    return loss, {"mean_token_accuracy": correct}


@dataclass
class SFTData:
    train: PackedRows
    val: PackedRows | None
    n_rows: int
    n_bad: int
    n_truncated: int


def load_sft_data(cfg: TrainConfig, tok, template, pad_id: int) -> SFTData:
    if not cfg.data.path:
        raise DataError("no data: pass --data FILE_OR_HUB_NAME (= data.path)")
    loaded = load_sft_rows(cfg.data.path, cfg.data.format or "messages", cfg.data.skip_bad)
    train_rows, val_rows = split_rows(loaded.rows, cfg.data.val_fraction, cfg.train.seed)
    seq_len = cfg.train.seq_len
    train_ex = render_examples(tok, train_rows, template, seq_len)
    val_ex = render_examples(tok, val_rows, template, seq_len)
    if not any(e.n_targets for e in train_ex):
        raise DataError(f"{cfg.data.path}: no assistant tokens left to learn from within train.seq_len={seq_len}")
    truncated = sum(e.truncated for e in train_ex + val_ex)
    return SFTData(
        train=PackedRows(train_ex, seq_len, cfg.data.packing, pad_id),
        val=PackedRows(val_ex, seq_len, cfg.data.packing, pad_id) if val_ex else None,
        n_rows=len(loaded.rows),
        n_bad=len(loaded.bad),
        n_truncated=truncated,
    )


def _evaluator(val: PackedRows | None, batch_size: int):
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        if val is None:
            return {}
        loss = correct = count = 0.0
        for i in range(0, len(val), batch_size):
            batch = val.batch(list(range(i, min(i + batch_size, len(val)))))
            total, metrics = sft_loss_sum(model, batch)
            loss += float(total)
            correct += float(metrics["mean_token_accuracy"])
            count += batch.n_targets
        return {"val_loss": loss / max(count, 1), "val_mean_token_accuracy": correct / max(count, 1)}

    return evaluate


def sft(cfg: TrainConfig, log=None) -> RunResult:
    """Fine-tune (or resume) the run `cfg` describes on chat rows; returns status, directory, checkpoint, summary."""
    start = start_model(cfg, "sft")
    tok, config = start.ck.tokenizer, start.config
    pad_id = tok.special_tokens.get(config.eos_token, 0)
    data = load_sft_data(cfg, tok, template_of(config), pad_id)
    if log is not None and (data.n_bad or data.n_truncated):
        log(f"{data.n_bad} bad rows skipped, {data.n_truncated} examples cut at train.seq_len={cfg.train.seq_len}")
    dist: DistContext = setup_distributed(cfg.train.device, cfg.train.threads)
    try:
        order = RowOrder(len(data.train), cfg.train.seed)
        run = None
        if dist.is_main:
            run = RunDir(cfg.run.dir, cfg.run_name(), wandb=cfg.run.wandb, wandb_config=cfg.model_dump(mode="json"))
            run.write_config(dump_train_config(cfg, config))
        steps = finetune_steps(cfg, len(data.train), dist.world)
        t = cfg.train
        tokens_per_row = t.seq_len if cfg.data.packing else max(
            1, sum(len(e.ids) for e in data.train.examples) // max(len(data.train), 1)
        )
        summary_fields: dict[str, Any] = {
            "run": cfg.run_name(),
            "stage": "sft",
            "base_checkpoint": start.source,
            "model_size": config.num_params(),
            "trainable_params": start.trainable,
            "lora": cfg.lora.model_dump() if cfg.lora.rank else None,
            "dataset": cfg.data.path,
            "dataset_rows": data.n_rows,
            "bad_rows_skipped": data.n_bad,
            "truncated_examples": data.n_truncated,
            "train_rows_packed": len(data.train),
            "supervised_tokens_per_epoch": data.train.n_targets(),
            "packing": cfg.data.packing,
            "lr_schedule": schedule_label(cfg),
            "batch_size_tokens": t.batch_size * t.grad_accum * dist.world * tokens_per_row,
            "precision": t.precision,
            "world_size": dist.world,
            "total_steps": steps,
        }
        loop = TrainLoop(
            cfg,
            start.ck.model,
            config,
            tok,
            batches=lambda first, size: data.train.batch(order.rows(first, size)),
            loss_fn=sft_loss_sum,
            evaluate=_evaluator(data.val, t.batch_size),
            dist=dist,
            run=run,
            stage="sft",
            total_steps=steps,
            tokens_per_sample=tokens_per_row,
            summary_fields=summary_fields,
            flops_per_token=flops_per_token(config, t.seq_len),
            peak_flops=load_matmul_peak(t.precision),
            meta_fields={"parent": start.source, "data": cfg.data.path, "format": cfg.data.format or "messages"},
            target_rate_name="supervised_tok_per_s",
        )
        return fit_and_summarise(loop, run)
    finally:
        dist.close()
