"""Pretraining: next-token prediction on prepared token shards, wired into the shared loop.

`pretrain(cfg)` opens the data, checks that the tokenizer fits the model, builds (or
resumes) the model and hands the loop three small functions: a batch source over
`TokenWindows`, the summed cross-entropy, and an evaluator reporting validation loss and
bits per byte. Works the same in one process and under `torchrun`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from llm.config import ModelConfig
from llm.data.loader import TokenWindows, token_byte_lengths
from llm.data.shards import PreparedData
from llm.errors import ConfigError, DataError
from llm.model import GPT
from llm.train.config import TrainConfig, dump_train_config
from llm.train.distributed import DistContext, setup_distributed
from llm.train.flops import flops_per_token, load_matmul_peak
from llm.train.loop import RunResult, TrainLoop
from llm.train.run_dir import RunDir

__all__ = ["pretrain", "TokenBatch", "lm_loss_sum", "resolve_model_config", "total_steps", "schedule_label"]


@dataclass
class TokenBatch:
    inputs: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T), -1 = ignore

    @property
    def n_targets(self) -> int:
        return int((self.targets != -1).sum())


def lm_loss_sum(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """Summed next-token cross-entropy of a batch (the loop turns sums into the global mean)."""
    device = next(model.parameters()).device
    logits, _ = model(batch.inputs.to(device))  # (B, T, V)
    return F.cross_entropy(
        logits.float().view(-1, logits.size(-1)), batch.targets.to(device).reshape(-1), ignore_index=-1, reduction="sum"
    )


def resolve_model_config(cfg: TrainConfig, data: PreparedData) -> ModelConfig:
    """The model of `cfg`, checked against the data's tokenizer and the sequence length."""
    model_cfg = cfg.model.build()
    tok_file = data.path / "tokenizer.json"
    if data.vocab_size > model_cfg.vocab_size:
        raise DataError(
            f"{tok_file} has {data.vocab_size} tokens but model.vocab_size is {model_cfg.vocab_size} "
            f"(preset {cfg.model.preset!r}); set model.vocab_size={data.vocab_size} or prepare the data with a "
            f"tokenizer of at most {model_cfg.vocab_size} tokens"
        )
    if cfg.train.seq_len > model_cfg.max_seq_len:
        raise ConfigError(
            f"train.seq_len={cfg.train.seq_len} exceeds model.max_seq_len={model_cfg.max_seq_len} "
            f"(preset {cfg.model.preset!r}); lower train.seq_len or raise model.max_seq_len"
        )
    return model_cfg


def total_steps(cfg: TrainConfig, world: int) -> int:
    t = cfg.train
    if t.max_tokens is not None:
        return max(1, math.ceil(t.max_tokens / (t.batch_size * t.grad_accum * world * t.seq_len)))
    if t.max_steps is None:
        raise ConfigError("set train.max_steps or train.max_tokens")
    return t.max_steps


def schedule_label(cfg: TrainConfig) -> str:
    t = cfg.train
    tail = f", decay {t.decay_fraction:g}" if t.schedule == "wsd" else ""
    floor = f", min {t.min_lr_ratio:g}x" if t.schedule != "constant" else ""
    return f"{t.schedule}(peak {t.lr:g}, warmup {t.warmup_steps}{floor}{tail})"


def _evaluator(windows: TokenWindows, byte_lengths: torch.Tensor, cfg: TrainConfig, dist: DistContext):
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        sums = torch.zeros(4, dtype=torch.float64)  # loss over all targets, #targets, loss over byte tokens, #bytes
        for x, y in windows.val_batches(cfg.train.batch_size, cfg.eval.sequences, dist.rank, dist.world):
            logits, _ = model(x.to(dist.device))  # (B, T, V)
            losses = F.cross_entropy(
                logits.float().view(-1, logits.size(-1)), y.to(dist.device).reshape(-1), reduction="none"
            )
            nbytes = byte_lengths[y.reshape(-1)].to(losses.device)  # (B*T,) 0 for special tokens
            sums += torch.tensor(
                [losses.sum().item(), losses.numel(), losses[nbytes > 0].sum().item(), nbytes.sum().item()],
                dtype=torch.float64,
            )
        loss, count, byte_loss, nbytes = dist.all_sum(sums.tolist())
        return {"val_loss": loss / max(count, 1), "val_bpb": byte_loss / (math.log(2) * max(nbytes, 1))}

    return evaluate


def pretrain(cfg: TrainConfig) -> RunResult:
    """Train (or resume) the run `cfg` describes; returns its status, directory, checkpoint and summary."""
    if cfg.data.dir is None:
        raise ConfigError("data.dir is not set: pass --data DIR (a directory from `llm data prepare`)")
    data = PreparedData.open(cfg.data.dir)
    model_cfg = resolve_model_config(cfg, data)
    dist = setup_distributed(cfg.train.device, cfg.train.threads)
    try:
        windows = TokenWindows(data, cfg.train.seq_len, cfg.train.seed)
        torch.manual_seed(cfg.train.seed)
        model = GPT(model_cfg)
        run = None
        if dist.is_main:
            run = RunDir(cfg.run.dir, cfg.run_name(), wandb=cfg.run.wandb, wandb_config=cfg.model_dump(mode="json"))
            run.write_config(dump_train_config(cfg, model_cfg))
        steps = total_steps(cfg, dist.world)
        t = cfg.train
        summary_fields: dict[str, Any] = {
            "run": cfg.run_name(),
            "stage": "pretrain",
            "model_size": model_cfg.num_params(),
            "model_size_non_embedding": model_cfg.num_params(include_embeddings=False),
            "preset": cfg.model.preset,
            "dataset": f"{data.meta['source']} ({data.path})",
            "dataset_train_tokens": data.tokens("train"),
            "lr_schedule": schedule_label(cfg),
            "batch_size_tokens": t.batch_size * t.grad_accum * dist.world * t.seq_len,
            "precision": t.precision,
            "world_size": dist.world,
            "total_steps": steps,
        }
        loop = TrainLoop(
            cfg,
            model,
            model_cfg,
            data.tokenizer,
            batches=lambda first, size: TokenBatch(*windows.train_batch(first, size)),
            loss_fn=lm_loss_sum,
            evaluate=_evaluator(windows, token_byte_lengths(data, model_cfg.vocab_size), cfg, dist),
            dist=dist,
            run=run,
            stage="pretrain",
            total_steps=steps,
            tokens_per_sample=t.seq_len,
            summary_fields=summary_fields,
            flops_per_token=flops_per_token(model_cfg, t.seq_len),
            peak_flops=load_matmul_peak(t.precision),
            meta_fields={"data": str(data.path), "dataset": data.meta["source"], "preset": cfg.model.preset},
        )
        loop.resume_if_possible()
        try:
            return loop.fit()
        finally:
            if run is not None:
                run.close()
    finally:
        dist.close()
