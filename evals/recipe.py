"""`iclaw eval recipe toolchat`: teach a model iclaw's tools and score every version, stage by stage.

    base -> synth -> sft -> dpo -> int8 -> eval -> report

Each stage is one CLI call (`llm pull`, `iclaw data synth`, `llm train sft|dpo`, `llm
quantize`, `iclaw eval`) run as a subprocess with its output in `OUT/logs/<stage>.log`:
the `llm` side stays unaware of iclaw, and this runner never imports torch or `llm`.
A finished stage is recorded in `OUT/recipe.json` with its command and duration and is
skipped on a rerun; an interrupted training stage resumes from its own last checkpoint
(the training loop does that), an interrupted eval with `iclaw eval --resume`.

`fast=True` is the nano-scale rehearsal (`DEMO_FAST=1`): a tiny model pretrained for a
minute stands in for SmolLM2, a few dozen rows, a few steps, three tasks.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iclaw.atomic import atomic_write_text
from pydantic import BaseModel, ConfigDict, Field

from evals.errors import EvalError

__all__ = ["RecipeConfig", "Recipe", "STAGES", "FAST_TASKS"]

STAGES = ("base", "synth", "sft", "dpo", "int8", "eval", "report")
# Three suite tasks of different kinds for the nano rehearsal.
FAST_TASKS = ["calc-product", "read-service-port", "csv-top-customer"]
# Training throughput assumed when planning against --budget-min (tokens/s, 2 loaded cores, bf16).
PLAN_TOK_PER_S = 150.0


class RecipeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: Path = Path("runs/toolchat")
    base: str = "smollm2-135m-instruct"
    suite: Path = Path("tasks")
    n_sft: int = Field(400, ge=1)
    n_pairs: int = Field(300, ge=0)
    seed: int = 0
    budget_min: float | None = Field(None, gt=0)  # fine-tuning budget (SFT + DPO), minutes
    sft_lr: float = 1e-4
    sft_epochs: float = 1.0
    dpo_lr: float = 5e-5
    dpo_beta: float = 0.1
    dpo_steps: int = Field(10, ge=1)
    dpo_lora_rank: int = Field(16, ge=0)  # DPO trains LoRA adapters on the SFT model (0 = full)
    lora_rank: int = Field(0, ge=0)  # SFT: 0 = full fine-tune
    seq_len: int = 2048
    agents: list[str] = ["v1", "v2"]
    tasks: list[str] = []  # task-id globs; empty = the whole suite
    jobs: int = Field(2, ge=1)
    epochs: int = Field(1, ge=1)
    fast: bool = False


@dataclass
class StageRecord:
    status: str = "pending"  # pending | running | done | failed
    seconds: float = 0.0
    command: list[str] = field(default_factory=list)
    note: str = ""


def _cli(name: str) -> list[str]:
    """The project's own console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    if name == "llm":
        return [sys.executable, "-m", "llm"]
    return [sys.executable, "-c", "import sys; from iclaw.cli import main; sys.exit(main())"]


class Recipe:
    def __init__(self, cfg: RecipeConfig, on_event: Callable[[str, str, StageRecord], None] | None = None) -> None:
        self.cfg = cfg
        self.out = cfg.out
        self.on_event = on_event or (lambda stage, what, rec: None)
        self.state_file = self.out / "recipe.json"
        self.state: dict[str, StageRecord] = {s: StageRecord() for s in STAGES}
        self.facts: dict[str, object] = {}
        if self.state_file.exists():
            saved = json.loads(self.state_file.read_text())
            for name, rec in saved.get("stages", {}).items():
                if name in self.state:
                    self.state[name] = StageRecord(**rec)
            self.facts = saved.get("facts", {})

    # ---- paths ----------------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    @property
    def models(self) -> dict[str, str]:
        """Model name -> checkpoint path, in the order they are scored."""
        base = str(self.facts.get("base_path", ""))
        return {
            "base": base,
            "sft": str(self.path("ckpt", "sft")),
            "dpo": str(self.path("ckpt", "dpo")),
            "dpo-int8": str(self.path("ckpt", "dpo-int8")),
        }

    # ---- bookkeeping ----------------------------------------------------------------------

    def _save(self) -> None:
        data = {"config": self.cfg.model_dump(mode="json"), "facts": self.facts,
                "stages": {k: vars(v) for k, v in self.state.items()}}
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.state_file, json.dumps(data, indent=2, default=str))

    def _run(self, stage: str, cmd: list[str], capture: bool = False) -> str:
        """Run one command with its output appended to logs/<stage>.log; raise with the log's tail on failure."""
        log = self.path("logs", f"{stage}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        rec = self.state[stage]
        rec.command = cmd
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n")
            f.flush()
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.run(cmd, stdout=subprocess.PIPE if capture else f, stderr=f, text=True, env=env)
        if proc.returncode != 0:
            tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise EvalError(f"recipe stage {stage} failed (exit {proc.returncode}): {tail[0]}; full log: {log}")
        return proc.stdout or ""

    def run(self, only: list[str] | None = None) -> Path:
        """Run every stage not yet done (or just `only`); returns the report path."""
        self.out.mkdir(parents=True, exist_ok=True)
        for stage in STAGES:
            if only and stage not in only:
                continue
            rec = self.state[stage]
            if rec.status == "done" and self._still_there(stage):
                self.on_event(stage, "skipped", rec)
                continue
            rec.status = "running"
            self._save()
            self.on_event(stage, "started", rec)
            t0 = time.monotonic()
            try:
                getattr(self, f"_stage_{stage}")()
            except BaseException:
                rec.status = "failed"
                rec.seconds += time.monotonic() - t0
                self._save()
                self.on_event(stage, "failed", rec)
                raise
            rec.status = "done"
            rec.seconds += time.monotonic() - t0
            self._save()
            self.on_event(stage, "done", rec)
        return self.path("report.md")

    def _still_there(self, stage: str) -> bool:
        outputs = {
            "base": [Path(str(self.facts.get("base_path", "")))],
            "synth": [self.path("data", "sft.jsonl")],
            "sft": [self.path("ckpt", "sft", "meta.json")],
            "dpo": [self.path("ckpt", "dpo", "meta.json")],
            "int8": [self.path("ckpt", "dpo-int8", "meta.json")],
            "eval": [self.path("evals", "evals.db")],
            "report": [self.path("report.md")],
        }[stage]
        return all(p.exists() for p in outputs)

    # ---- stages -----------------------------------------------------------------------------

    def _stage_base(self) -> None:
        if not self.cfg.fast:
            out = self._run("base", [*_cli("llm"), "pull", self.cfg.base], capture=True)
            self.facts["base_path"] = out.strip().splitlines()[-1]
            return
        data = self.path("data", "stdlib")
        if not (data / "data.json").exists():
            self._run("base", [*_cli("llm"), "data", "prepare", "stdlib:json,textwrap,argparse", "--vocab-size", "1024",
                               "--out", str(data), "--force"])
        self._run("base", [*_cli("llm"), "train", "pretrain", "--preset", "nano", "--data", str(data), "--name", "base",
                           "--max-steps", "60", f"run.dir={self.path('train')}", "run.progress=false",
                           "eval.every=0", "checkpoint.every=0", "model.max_seq_len=4096"])
        self.facts["base_path"] = str(self.path("train", "base", "checkpoints", "final"))

    def _stage_synth(self) -> None:
        n, pairs = (40, 24) if self.cfg.fast else (self.cfg.n_sft, self.cfg.n_pairs)
        cmd = [*_cli("iclaw"), "data", "synth", "--n", str(n), "--out", str(self.path("data", "sft.jsonl")),
               "--seed", str(self.cfg.seed)]
        if pairs:
            cmd += ["--pairs", str(self.path("data", "pairs.jsonl")), "--n-pairs", str(pairs)]
        self._run("synth", cmd)

    def _train_common(self, name: str, lora_rank: int | None = None) -> list[str]:
        seq = 2048 if self.cfg.fast else self.cfg.seq_len  # the nano tokenizer needs ~3x the tokens of SmolLM2
        common = ["--name", name, "--bf16", f"run.dir={self.path('train')}", "run.progress=false",
                  f"train.seq_len={seq}", "--out", str(self.path("ckpt", name))]
        rank = self.cfg.lora_rank if lora_rank is None else lora_rank
        if rank:
            common += ["--lora-rank", str(rank)]
        return common

    def _epochs_within_budget(self, share: float, tokens: int, epochs: float) -> float:
        """Shrink the epochs so that tokens * epochs / PLAN_TOK_PER_S fits `share` of the budget."""
        if self.cfg.budget_min is None or tokens <= 0:
            return epochs
        fit = self.cfg.budget_min * 60 * share * PLAN_TOK_PER_S / tokens
        return round(min(epochs, fit), 3)

    def _data_tokens(self, file: Path) -> int:
        """Rough token count of a JSONL file (the tokenizer lives in `llm`; ~3.6 bytes per token)."""
        return int(file.stat().st_size / 3.6) if file.exists() else 0

    def _stage_sft(self) -> None:
        data = self.path("data", "sft.jsonl")
        cmd = [*_cli("llm"), "train", "sft", "--model", self.models["base"], "--data", str(data),
               *self._train_common("sft")]
        if self.cfg.fast:
            cmd += ["--max-steps", "12", "train.lr=3e-3", "train.grad_accum=1", "train.batch_size=2",
                    "eval.every=0", "checkpoint.every=0"]
        else:
            epochs = self._epochs_within_budget(0.75, self._data_tokens(data), self.cfg.sft_epochs)
            # One conversation per row, 8 per step: on a CPU an unpacked row takes the fast causal
            # attention path and wastes no work on cross-example masking (measured ~290 vs ~230 tok/s).
            cmd += ["--epochs", str(epochs), f"train.lr={self.cfg.sft_lr}", "train.batch_size=1", "train.grad_accum=8",
                    "data.packing=false", "train.warmup_steps=4", "eval.every=10", "checkpoint.every=10",
                    "data.val_fraction=0.03"]
        self._run("sft", cmd)

    def _stage_dpo(self) -> None:
        data = self.path("data", "pairs.jsonl")
        if not data.exists():
            raise EvalError(f"{data} is missing: run the synth stage with n_pairs > 0")
        cmd = [*_cli("llm"), "train", "dpo", "--model", self.models["sft"], "--data", str(data),
               *self._train_common("dpo", lora_rank=self.cfg.dpo_lora_rank), "--beta", str(self.cfg.dpo_beta)]
        if self.cfg.fast:
            cmd += ["--max-steps", "4", "train.lr=1e-3", "train.grad_accum=1", "eval.every=0", "checkpoint.every=0"]
        else:
            # A pair is two full sequences plus a reference pass, so DPO steps cost ~3x an SFT
            # step: a few steps of 8 pairs move the margins; the reference is the SFT model
            # itself (LoRA adapters off), so no second copy and no up-front pass.
            steps = self.cfg.dpo_steps
            if self.cfg.budget_min is not None:
                per_step_s = 3 * 8 * self._data_tokens(data) / max(self.cfg.n_pairs, 1) / PLAN_TOK_PER_S
                steps = max(1, min(steps, int(self.cfg.budget_min * 60 * 0.25 / max(per_step_s, 1e-9))))
            cmd += ["--max-steps", str(steps), f"train.lr={self.cfg.dpo_lr}", "train.batch_size=2",
                    "train.grad_accum=4", "train.warmup_steps=2", "eval.every=0", "checkpoint.every=5",
                    "data.val_fraction=0.05"]
        self._run("dpo", cmd)

    def _stage_int8(self) -> None:
        self._run("int8", [*_cli("llm"), "quantize", self.models["dpo"], "--bits", "8",
                           "--out", self.models["dpo-int8"]])

    def _stage_eval(self) -> None:
        from evals.store import Store

        out = self.path("evals")
        batch = self.facts.get("eval_batch")
        if batch and (out / "evals.db").exists():
            self._run("eval", [*_cli("iclaw"), "eval", "--resume", str(batch), "--out", str(out),
                               "--jobs", str(self.cfg.jobs)])
            return
        cmd = [*_cli("iclaw"), "eval", "--suite", str(self.cfg.suite), "--out", str(out), "--temperature", "0",
               "--jobs", str(self.cfg.jobs), "--epochs", str(self.cfg.epochs), "--agent", ",".join(self.cfg.agents)]
        for name, path in self.models.items():
            cmd += ["--model", f"{name}=ckpt:{path}"]
        for t in FAST_TASKS if self.cfg.fast and not self.cfg.tasks else self.cfg.tasks:
            cmd += ["--task", t]
        before = {r.batch for r in Store(out / "evals.db").runs()} if (out / "evals.db").exists() else set()
        try:
            self._run("eval", cmd)
        finally:
            if (out / "evals.db").exists():
                with Store(out / "evals.db") as store:
                    new = [r.batch for r in store.runs() if r.batch not in before]
                if new:
                    self.facts["eval_batch"] = new[-1]
                    self._save()

    def _stage_report(self) -> None:
        from evals.recipe_report import write_report

        plot = self.path("curves.png")
        runs = [str(self.path("train", n)) for n in ("sft", "dpo") if self.path("train", n, "metrics.jsonl").exists()]
        if runs:
            try:
                self._run("report", [*_cli("llm"), "plot", *runs, "--out", str(plot), "--title", "fine-tuning loss"])
            except EvalError:
                plot = None  # matplotlib missing: the report says so
        write_report(self, plot if plot is not None and plot.exists() else None)
