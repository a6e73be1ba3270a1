"""The training loop shared by pretraining, SFT and DPO.

A stage supplies three things and the loop does the rest (accumulation, DDP, bf16
autocast, clipping, the LR schedule, the NaN/inf guard, logging, evaluation, checkpoints,
SIGINT/SIGTERM, exact resume, the progress bar, summary.json):

- `batches(first_sample, size) -> Batch`: micro-batches addressed by a global sample index,
  so the data order is a function of (seed, samples seen) and resuming needs one integer;
- `loss_fn(model, batch) -> loss_sum` (or `(loss_sum, {metric: sum})`): the summed loss of
  a micro-batch whose `batch.n_targets` counts the targets it is summed over; extra metric
  sums (token accuracy, DPO rewards) are averaged over the same targets and logged. The loop divides by the number
  of targets in the whole global batch (all micro-batches of all ranks), so accumulation
  and DDP give the mean over exactly the same tokens as one big batch, masked losses included;
- `evaluate(model) -> {"val_loss": ..., ...}`, run every `eval.every` steps.

The loop knows nothing about tokens or text: a Batch is whatever the stage's loss_fn reads.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from llm.checkpoint import load_config, load_state_dict, make_meta, save_checkpoint
from llm.config import ModelConfig
from llm.errors import CheckpointError, ConfigError, TrainingError
from llm.lora import store_frozen_base
from llm.model import GPT
from llm.tokenizer import Tokenizer
from llm.train.config import TrainConfig
from llm.train.distributed import DistContext
from llm.train.moe_hooks import MoEHooks
from llm.train.optim import build_optimizer
from llm.train.progress import TrainProgress
from llm.train.run_dir import RunDir
from llm.train.schedule import lr_at
from llm.train.summary import RunStats

__all__ = ["Batch", "BatchSource", "LossFn", "Evaluator", "TrainLoop", "RunResult", "TRAIN_STATE_FILE"]

TRAIN_STATE_FILE = "train_state.pt"


class Batch(Protocol):
    """A micro-batch; only its loss function reads the rest of it."""

    @property
    def n_targets(self) -> int: ...


BatchSource = Callable[[int, int], Batch]  # (first global sample index, batch size) -> Batch
# summed loss over batch.n_targets targets, optionally with metric sums over the same targets
LossFn = Callable[[torch.nn.Module, Batch], "torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]"]
Evaluator = Callable[[torch.nn.Module], dict[str, float]]


@dataclass
class RunResult:
    status: str  # "finished" | "interrupted"
    run_dir: Path | None  # None on ranks other than 0
    checkpoint: Path | None
    summary: dict[str, Any] = field(default_factory=dict)


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checks it between steps, saves and returns."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): no signal handling
                pass
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.raised = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainLoop:
    def __init__(
        self,
        cfg: TrainConfig,
        model: GPT,
        model_config: ModelConfig,
        tokenizer: Tokenizer | None,  # None only where nothing is saved (benchmarks)
        batches: BatchSource,
        loss_fn: LossFn,
        evaluate: Evaluator,
        dist: DistContext,
        run: RunDir | None,
        stage: str,
        total_steps: int,
        tokens_per_sample: int,
        summary_fields: dict[str, Any],
        flops_per_token: float,
        peak_flops: float | None,
        meta_fields: dict[str, Any] | None = None,
        target_rate_name: str | None = None,
    ) -> None:
        self.cfg, self.t = cfg, cfg.train
        self.model, self.model_config, self.tokenizer = model.to(dist.device), model_config, tokenizer
        # Under LoRA the frozen base only ever feeds bf16 matmuls when autocast is on: store it in bf16
        # (half the memory, no per-step cast); checkpoints get it back in its own dtype.
        self.frozen_dtypes = store_frozen_base(self.model, torch.bfloat16) if cfg.train.precision == "bf16" else {}
        self.batches, self.loss_fn, self.evaluate_fn = batches, loss_fn, evaluate
        self.dist, self.run, self.stage = dist, run, stage
        self.total_steps = total_steps
        self.tokens_per_sample = tokens_per_sample
        self.summary_fields = summary_fields
        self.flops_per_token, self.peak_flops = flops_per_token, peak_flops
        self.meta_fields = meta_fields or {}
        self.target_rate_name = target_rate_name  # e.g. "supervised_tok_per_s": targets/s in metrics.jsonl
        self.last_metrics: dict[str, float] = {}  # the extra metric means of the last step
        self.last_targets = 0.0  # targets of the last step (all ranks)
        self.optimizer = build_optimizer(self.model, self.t, dist.device)
        self.stats = RunStats()
        self.samples_per_step = self.t.batch_size * self.t.grad_accum * dist.world
        self.net: torch.nn.Module = DDP(self.model) if dist.enabled else self.model
        self.moe = MoEHooks.of(self.model, dist)  # None for a dense model
        self.last_good: tuple[Path, int] | None = None  # (checkpoint, step) a NaN would fall back to

    # ---- state -------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.t.precision == "bf16")

    def resume_if_possible(self) -> bool:
        """Load weights, optimizer, counters and RNG from runs/<name>/checkpoints/last when allowed."""
        last = self._last_path()
        if not (self.cfg.run.resume and (last / TRAIN_STATE_FILE).exists()):
            return False
        saved = load_config(last)
        if saved.model_dump() != self.model_config.model_dump():
            diff = [k for k, v in self.model_config.model_dump().items() if saved.model_dump().get(k) != v]
            raise ConfigError(
                f"{last} was trained with a different model ({', '.join(diff)} differ); "
                "choose another run.name or pass run.resume=false to start over"
            )
        state = load_state_dict(last)
        if self.model_config.tie_embeddings:
            state.pop("lm_head.weight", None)
        self.model.load_state_dict(state, strict=not self.model_config.tie_embeddings)
        try:
            ts = torch.load(last / TRAIN_STATE_FILE, map_location=self.dist.device, weights_only=True)
        except (RuntimeError, OSError, EOFError) as exc:
            raise CheckpointError(f"{last / TRAIN_STATE_FILE}: unreadable ({exc}); pass run.resume=false") from exc
        self.optimizer.load_state_dict(ts["optimizer"])
        self.stats = RunStats.from_state(ts["stats"])
        torch.set_rng_state(ts["rng_torch"])
        random.setstate(ts["rng_python"])
        self.last_good = (last, self.stats.step)
        return True

    def save(self, path: Path, with_state: bool) -> Path:
        """Rank 0 writes the checkpoint atomically; every rank waits for it."""
        if self.dist.is_main:
            meta = make_meta(
                self.stage,
                steps=self.stats.step,
                tokens_seen=self.stats.tokens,
                final_metrics={"train_loss": self.stats.smoothed_loss, **self.stats.last_eval},
                **self.meta_fields,
            )
            extra = None
            if with_state:
                ts = {
                    "optimizer": self.optimizer.state_dict(),
                    "stats": self.stats.state_dict(),
                    "rng_torch": torch.get_rng_state(),
                    "rng_python": random.getstate(),
                }
                extra = {TRAIN_STATE_FILE: lambda p: torch.save(ts, p)}
            weights: GPT | dict[str, torch.Tensor] = self.model
            if self.frozen_dtypes:
                weights = {k: v.to(self.frozen_dtypes.get(k, v.dtype)) for k, v in self.model.state_dict().items()}
            save_checkpoint(path, weights, self.model_config, self.tokenizer, meta, extra_files=extra)
        self.dist.barrier()
        return path

    # ---- one step ----------------------------------------------------------------------

    def _micro_batches(self) -> Iterator[Batch]:
        B, R = self.t.batch_size, self.dist.world
        for m in range(self.t.grad_accum):
            yield self.batches(self.stats.samples + (m * R + self.dist.rank) * B, B)

    def train_step(self) -> tuple[float, float]:
        """One optimizer step; returns the global mean loss and the pre-clip gradient norm."""
        step = self.stats.step
        lr = lr_at(step, self.total_steps, self.t)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        micro = list(self._micro_batches())
        # Normalise by the targets of the whole global batch so that any split into micro-batches
        # and ranks averages over the same tokens; DDP then averages gradients over ranks, so
        # scale by world to undo its division.
        n_local = sum(b.n_targets for b in micro)
        n_global = self.dist.all_sum([float(n_local)])[0]
        scale = self.dist.world / max(n_global, 1.0)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.dist.device)  # one host sync per step
        extra: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(micro):
            sync = i == len(micro) - 1 or not self.dist.enabled
            ctx = contextlib.nullcontext() if sync else self.net.no_sync()
            with ctx:
                with self._autocast():
                    out = self.loss_fn(self.net, batch)
                total, metrics = out if isinstance(out, tuple) else (out, {})
                aux = self.moe.aux_loss() if self.moe else None  # MoE balance/z-losses: trained, not reported
                ((total if aux is None else total + aux * batch.n_targets) * scale).backward()
            loss_sum += total.detach().double()
            for k, v in metrics.items():
                extra[k] = extra.get(k, 0.0) + v.detach().double()
        names = sorted(extra)
        sums = self.dist.all_sum([loss_sum.item()] + [float(extra[k]) for k in names])
        loss = sums[0] / max(n_global, 1.0)
        self.last_metrics = {k: v / max(n_global, 1.0) for k, v in zip(names, sums[1:])}
        self.last_targets = n_global
        clip = self.t.grad_clip if self.t.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            where = f"{self.last_good[0]} (step {self.last_good[1]})" if self.last_good else "none was written yet"
            raise TrainingError(
                f"loss {loss:.4g} / grad norm {grad_norm:.4g} at step {step + 1}: training stopped without saving; "
                f"last good checkpoint: {where}. Lower train.lr, keep train.grad_clip > 0, or use precision fp32"
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.moe:
            self.moe.after_step(len(micro))  # aux-free bias update and the step's expert loads
        return loss, grad_norm

    # ---- evaluation and logging --------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            result = self.evaluate_fn(self.model)
        self.model.train()
        self.stats.last_eval = result
        if self.run is not None:
            self.run.log_eval({"step": self.stats.step, "tokens": self.stats.tokens, **result})
        return result

    def summary(self) -> dict[str, Any]:
        return self.stats.summary(self.summary_fields, self.flops_per_token, self.peak_flops)

    # ---- the loop ----------------------------------------------------------------------

    def fit(self) -> RunResult:
        resumed_from = self.stats.step
        if self.run is not None:
            self.run.reset_logs(keep_until_step=self.stats.step)
        self.model.train()
        status = "finished"
        start = time.perf_counter()
        segment_elapsed0 = self.stats.elapsed_seconds
        window_t, window_tokens, window_targets = time.perf_counter(), 0, 0.0
        progress = TrainProgress(
            enabled=self.dist.is_main and self.cfg.run.progress,
            total=self.total_steps,
            done=self.stats.step,
            label=self.cfg.run_name(),
            main=self.dist.is_main,
        )
        if resumed_from:
            progress.note(f"resuming {self.cfg.run_name()} from step {resumed_from} ({self._last_path()})", always=True)
        with _StopFlag() as stop, progress:
            while self.stats.step < self.total_steps:
                t0 = time.perf_counter()
                try:
                    loss, grad_norm = self.train_step()
                except TrainingError as exc:
                    if self.run is not None:
                        self.run.write_summary(self.summary() | {"status": "diverged", "error": str(exc)})
                    raise
                tokens = self.samples_per_step * self.tokens_per_sample
                self.stats.update(loss, grad_norm, self.samples_per_step, tokens, time.perf_counter() - t0)
                self.stats.elapsed_seconds = segment_elapsed0 + time.perf_counter() - start
                window_tokens += tokens
                window_targets += self.last_targets
                step = self.stats.step
                if step % self.cfg.run.log_every == 0 or step == self.total_steps:
                    now = time.perf_counter()
                    tok_per_s = window_tokens / max(now - window_t, 1e-9)
                    targets_per_s = window_targets / max(now - window_t, 1e-9)
                    window_t, window_tokens, window_targets = now, 0, 0.0
                    row = {
                        "step": step,
                        "tokens": self.stats.tokens,
                        "loss": loss,
                        "lr": lr_at(step - 1, self.total_steps, self.t),
                        "grad_norm": grad_norm,
                        "tok_per_s": tok_per_s,
                        "mfu": tok_per_s * self.flops_per_token / self.peak_flops if self.peak_flops else None,
                        "elapsed_s": self.stats.elapsed_seconds,
                        **self.last_metrics,
                        **(self.moe.metrics() if self.moe else {}),
                    }
                    if self.target_rate_name:
                        row[self.target_rate_name] = targets_per_s
                    if self.run is not None:
                        self.run.log_metrics(row)
                    progress.update(step, loss=loss, tok_per_s=tok_per_s)
                if self.cfg.eval.every and step % self.cfg.eval.every == 0 and step < self.total_steps:
                    result = self.evaluate()
                    progress.note(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
                if self.cfg.checkpoint.every and step % self.cfg.checkpoint.every == 0 and step < self.total_steps:
                    self.last_good = (self.save(self._last_path(), with_state=True), step)
                if self.dist.any(stop.raised):
                    status = "interrupted"
                    break
        if status == "finished":
            self.evaluate()
        self.stats.elapsed_seconds = segment_elapsed0 + time.perf_counter() - start
        checkpoint = self.save(self._last_path(), with_state=True)
        if status == "finished":
            checkpoint = self.save(self._final_path(), with_state=False)
        summary = self.summary() | {"status": status, "resumed_from_step": resumed_from or None}
        if self.run is not None:
            self.run.write_summary(summary)
        return RunResult(status, self.run.path if self.run else None, checkpoint, summary)

    def _last_path(self) -> Path:
        return Path(self.cfg.run.dir) / self.cfg.run_name() / "checkpoints" / "last"

    def _final_path(self) -> Path:
        if self.cfg.run.out is not None:
            return Path(self.cfg.run.out)
        return Path(self.cfg.run.dir) / self.cfg.run_name() / "checkpoints" / "final"
