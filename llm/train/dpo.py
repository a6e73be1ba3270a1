"""Direct Preference Optimization (Rafailov et al. 2023, https://arxiv.org/abs/2305.18290) on the shared loop.

A pair is (prompt, chosen, rejected); both continuations are rendered with the shared
ChatML renderer and only the final assistant reply is scored (the shared prompt cancels).
With h = beta * [(log pi(c) - log ref(c)) - (log pi(r) - log ref(r))]:

    sigmoid (the paper's eq. 7)          -log sigmoid(h)
    ipo     (Azar et al. 2023, eq. 17)   (h / beta - 1 / (2 beta))^2
    hinge   (SLiC, Zhao et al. 2023)     max(0, 1 - h)

The reference is a frozen copy of the starting model, or under LoRA the same model with
its adapters switched off (no second copy in memory). With `dpo.precompute_ref` the
reference log-probs are computed once and cached beside the data. Metrics use TRL's names
(`rewards/chosen`, `rewards/margins`, ...), each a mean over pairs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from llm.chat_template import render_chat
from llm.data.chat_data import load_dpo_rows
from llm.errors import DataError
from llm.lora import adapters_disabled
from llm.train.config import TrainConfig, dump_train_config
from llm.train.distributed import setup_distributed
from llm.train.finetune import RowOrder, finetune_steps, fit_and_summarise, split_rows, start_model, template_of
from llm.train.flops import flops_per_token, load_matmul_peak
from llm.train.loop import RunResult, TrainLoop
from llm.train.pretrain import schedule_label
from llm.train.run_dir import RunDir

__all__ = ["dpo", "dpo_loss", "sequence_logps", "PairBatch", "DPO_DEFAULTS", "render_pairs", "Pair"]

DPO_DEFAULTS = [
    "train.lr=5e-6",
    "train.warmup_steps=5",
    "train.weight_decay=0.0",
    "train.batch_size=2",
    "train.seq_len=1024",
    "train.grad_accum=4",
    "train.epochs=1",
    "train.max_steps=null",
    "eval.every=25",
    "checkpoint.every=25",
    "run.log_every=1",
]


@dataclass
class Pair:
    chosen: tuple[list[int], list[int]]  # (ids, mask over the reply only)
    rejected: tuple[list[int], list[int]]
    ref: tuple[float, float] | None = None  # precomputed reference log-probs (chosen, rejected)


@dataclass
class PairBatch:
    inputs: torch.Tensor  # (2B, T): B chosen rows, then B rejected rows
    targets: torch.Tensor  # (2B, T), -1 = not part of the reply
    ref_logps: torch.Tensor | None  # (2B,) when precomputed

    @property
    def n_targets(self) -> int:
        return self.inputs.shape[0] // 2  # the loss is a mean over pairs


def dpo_loss(
    pi_c: torch.Tensor, pi_r: torch.Tensor, ref_c: torch.Tensor, ref_r: torch.Tensor, beta: float, kind: str
) -> torch.Tensor:
    """Per-pair loss (B,) from summed reply log-probs of policy and reference."""
    logits = (pi_c - ref_c) - (pi_r - ref_r)  # (B,)
    if kind == "sigmoid":
        return -F.logsigmoid(beta * logits)
    if kind == "ipo":
        return (logits - 1.0 / (2.0 * beta)) ** 2
    if kind == "hinge":
        return torch.relu(1.0 - beta * logits)
    raise ValueError(f"unknown DPO loss {kind!r}")


def sequence_logps(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed log-prob of the targets (!= -1) of each row, (N,); the head runs on those positions only."""
    device = next(model.parameters()).device
    inputs, targets = inputs.to(device), targets.to(device)
    hidden, _ = model(inputs, hidden_only=True)  # (N, T, D)
    keep = targets != -1
    logits = getattr(model, "module", model).lm_head(hidden[keep]).float()  # (M, V)
    token_logps = torch.gather(F.log_softmax(logits, -1), 1, targets[keep].unsqueeze(1)).squeeze(1)  # (M,)
    rows = torch.arange(inputs.shape[0], device=device).unsqueeze(1).expand_as(targets)[keep]  # (M,)
    return torch.zeros(inputs.shape[0], device=device, dtype=torch.float32).index_add(0, rows, token_logps)


def render_pairs(tok, rows: list[dict], template, max_len: int) -> tuple[list[Pair], int]:
    """Pairs of (ids, reply mask); a pair whose prompt leaves no room for the reply is dropped (counted)."""
    pairs, dropped = [], 0
    for row in rows:
        prefix, _ = render_chat(tok, row["prompt"], row.get("tools"), add_generation_prompt=True, template=template)
        sides = []
        for reply in (row["chosen"], row["rejected"]):
            ids, mask = render_chat(tok, row["prompt"] + [reply], row.get("tools"), template=template)
            mask = [0] * len(prefix) + mask[len(prefix):]  # score the final reply only
            sides.append((ids[:max_len], mask[:max_len]))
        if min(sum(m[1:]) for _, m in sides) == 0:
            dropped += 1
            continue
        pairs.append(Pair(sides[0], sides[1]))
    return pairs, dropped


def _collate(pairs: list[Pair], pad_id: int) -> PairBatch:
    seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    T = max(len(ids) for ids, _ in seqs)
    inputs = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), T), -1, dtype=torch.long)
    for r, (ids, mask) in enumerate(seqs):
        t = torch.tensor(ids)
        inputs[r, : len(ids)] = t
        targets[r, : len(ids) - 1] = t[1:].masked_fill(torch.tensor(mask[1:]) == 0, -1)
    ref = None
    if all(p.ref is not None for p in pairs):
        ref = torch.tensor([p.ref[0] for p in pairs] + [p.ref[1] for p in pairs], dtype=torch.float32)
    return PairBatch(inputs, targets, ref)


class _Objective:
    """The DPO loss with its reference: live (frozen copy or adapters off) or precomputed."""

    def __init__(self, cfg: TrainConfig, reference: torch.nn.Module | None, lora: bool) -> None:
        self.beta, self.kind = cfg.dpo.beta, cfg.dpo.loss
        self.reference, self.lora = reference, lora

    def reference_logps(self, model: torch.nn.Module, batch: PairBatch) -> torch.Tensor:
        if batch.ref_logps is not None:
            return batch.ref_logps.to(next(model.parameters()).device)
        with torch.no_grad():
            if self.lora:
                with adapters_disabled(model):
                    return sequence_logps(model, batch.inputs, batch.targets)
            return sequence_logps(self.reference, batch.inputs, batch.targets)

    def __call__(self, model: torch.nn.Module, batch: PairBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        B = batch.inputs.shape[0] // 2
        ref = self.reference_logps(model, batch)
        pi = sequence_logps(model, batch.inputs, batch.targets)
        pi_c, pi_r, ref_c, ref_r = pi[:B], pi[B:], ref[:B], ref[B:]
        losses = dpo_loss(pi_c, pi_r, ref_c, ref_r, self.beta, self.kind)
        rc, rr = self.beta * (pi_c - ref_c).detach(), self.beta * (pi_r - ref_r).detach()
        metrics = {
            "rewards/chosen": rc.sum(),
            "rewards/rejected": rr.sum(),
            "rewards/accuracies": (rc > rr).float().sum(),
            "rewards/margins": (rc - rr).sum(),
            "logps/chosen": pi_c.detach().sum(),
            "logps/rejected": pi_r.detach().sum(),
        }
        return losses.sum(), metrics


def _cache_file(cfg: TrainConfig, start_source: str, meta: dict) -> Path | None:
    data = Path(str(cfg.data.path))
    if not data.exists():
        return None
    stat = data.stat()
    key = json.dumps([start_source, meta.get("created_at"), str(data.resolve()), stat.st_size, stat.st_mtime_ns,
                      cfg.train.seq_len, cfg.data.format, cfg.data.val_fraction, cfg.train.seed], default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return data.with_name(f".{data.name}.ref-logps-{digest}.json")


def precompute_reference(model: torch.nn.Module, pairs: list[Pair], pad_id: int, batch_size: int,
                         cache: Path | None, autocast) -> None:
    """Fill `pair.ref` for every pair: from the cache when it matches, else one no-grad pass (then cached)."""
    if cache is not None and cache.exists():
        values = json.loads(cache.read_text())
        if len(values) == len(pairs):
            for p, v in zip(pairs, values):
                p.ref = (v[0], v[1])
            return
    model.eval()
    with torch.no_grad(), autocast():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            batch = _collate([Pair(p.chosen, p.rejected) for p in chunk], pad_id)
            lp = sequence_logps(model, batch.inputs, batch.targets).tolist()
            for j, p in enumerate(chunk):
                p.ref = (lp[j], lp[j + len(chunk)])
    model.train()
    if cache is not None:
        from llm.atomic import atomic_write_text

        atomic_write_text(cache, json.dumps([list(p.ref) for p in pairs]))


def _evaluator(val: list[Pair], objective: _Objective, pad_id: int, batch_size: int):
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        if not val:
            return {}
        loss = acc = 0.0
        for i in range(0, len(val), batch_size):
            total, m = objective(model, _collate(val[i : i + batch_size], pad_id))
            loss += float(total)
            acc += float(m["rewards/accuracies"])
        return {"val_loss": loss / len(val), "val_rewards/accuracies": acc / len(val)}

    return evaluate


def dpo(cfg: TrainConfig, log=None) -> RunResult:
    """DPO (or resume) as `cfg` describes; returns status, directory, checkpoint and summary."""
    if not cfg.data.path:
        raise DataError("no data: pass --data FILE_OR_HUB_NAME (= data.path)")
    loaded = load_dpo_rows(cfg.data.path, cfg.data.format or "pairs", cfg.data.skip_bad)
    start = start_model(cfg, "dpo")
    tok, config, model = start.ck.tokenizer, start.config, start.ck.model
    pad_id = tok.special_tokens.get(config.eos_token, 0)
    train_rows, val_rows = split_rows(loaded.rows, cfg.data.val_fraction, cfg.train.seed)
    template = template_of(config)
    train, dropped = render_pairs(tok, train_rows, template, cfg.train.seq_len)
    val, dropped_val = render_pairs(tok, val_rows, template, cfg.train.seq_len)
    if not train:
        raise DataError(f"{cfg.data.path}: no pair has a reply within train.seq_len={cfg.train.seq_len}")
    if log is not None and (loaded.bad or dropped + dropped_val):
        log(f"{len(loaded.bad)} bad rows skipped, {dropped + dropped_val} pairs with no reply within seq_len dropped")
    lora = cfg.lora.rank > 0
    reference = None
    if not lora and not cfg.dpo.precompute_ref:
        reference = copy.deepcopy(model).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
    objective = _Objective(cfg, reference, lora)
    dist = setup_distributed(cfg.train.device, cfg.train.threads)
    try:
        autocast = lambda: torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16")  # noqa: E731
        if cfg.dpo.precompute_ref:
            cache = _cache_file(cfg, start.source, start.ck.meta)
            precompute_reference(model.to(dist.device), train + val, pad_id, cfg.train.batch_size, cache, autocast)
        order = RowOrder(len(train), cfg.train.seed)
        run = None
        if dist.is_main:
            run = RunDir(cfg.run.dir, cfg.run_name(), wandb=cfg.run.wandb, wandb_config=cfg.model_dump(mode="json"))
            run.write_config(dump_train_config(cfg, config))
        steps = finetune_steps(cfg, len(train), dist.world)
        t = cfg.train
        mean_len = sum(len(p.chosen[0]) + len(p.rejected[0]) for p in train) // len(train)
        summary_fields: dict[str, Any] = {
            "run": cfg.run_name(),
            "stage": "dpo",
            "base_checkpoint": start.source,
            "model_size": config.num_params(),
            "trainable_params": start.trainable,
            "lora": cfg.lora.model_dump() if lora else None,
            "dpo": cfg.dpo.model_dump(),
            "dataset": cfg.data.path,
            "dataset_rows": len(loaded.rows),
            "bad_rows_skipped": len(loaded.bad),
            "train_pairs": len(train),
            "lr_schedule": schedule_label(cfg),
            "precision": t.precision,
            "world_size": dist.world,
            "total_steps": steps,
        }
        loop = TrainLoop(
            cfg,
            model,
            config,
            tok,
            batches=lambda first, size: _collate([train[i] for i in order.rows(first, size)], pad_id),
            loss_fn=objective,
            evaluate=_evaluator(val, objective, pad_id, t.batch_size),
            dist=dist,
            run=run,
            stage="dpo",
            total_steps=steps,
            tokens_per_sample=mean_len,
            summary_fields=summary_fields,
            flops_per_token=flops_per_token(config, t.seq_len),
            peak_flops=load_matmul_peak(t.precision),
            meta_fields={"parent": start.source, "data": cfg.data.path, "format": cfg.data.format or "pairs",
                         "dpo": cfg.dpo.model_dump()},
        )
        if reference is not None:
            reference.to(dist.device)
        return fit_and_summarise(loop, run)
    finally:
        dist.close()
