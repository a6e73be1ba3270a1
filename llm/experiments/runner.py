"""What every experiment needs: data, a time budget, short training runs, and throughput probes.

An experiment turns its `--budget-min` into token counts by first measuring how fast each
model it will train runs on this machine (a few real training steps), then sizing runs so
the whole grid fits the budget. Each run is an ordinary `pretrain` run under
`<out>/runs/<name>/`, so `llm plot` works on them too.

Without `--data`, experiments use the built-in `stdlib` corpus with a 4096-token tokenizer
trained on it, prepared once into $LLM_HOME/data/stdlib-4096.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm.data.shards import DATA_FILE, PreparedData
from llm.hub import llm_home

__all__ = ["ExperimentContext", "ModelShape", "default_data", "TINY_BUDGET_MIN"]

TINY_BUDGET_MIN = 1.0  # below this, grids shrink to their CI-sized version
DEFAULT_VOCAB = 4096


def default_data(log: Callable[[str], None] = print) -> Path:
    """$LLM_HOME/data/stdlib-4096: the stdlib corpus with a tokenizer trained on it (built on first use)."""
    from llm.data.prepare import prepare_data, train_tokenizer

    out = llm_home() / "data" / f"stdlib-{DEFAULT_VOCAB}"
    if not (out / DATA_FILE).exists():
        version = sys.version.split()[0]
        log(f"preparing the Python {version} stdlib corpus with a {DEFAULT_VOCAB}-token tokenizer into {out} (once)")
        prepare_data("stdlib", train_tokenizer("stdlib", DEFAULT_VOCAB), out, force=True)
    return out


@dataclass(frozen=True)
class ModelShape:
    """A small Llama-style shape; `overrides` turns it into model.* config overrides."""

    d_model: int
    n_layers: int
    n_heads: int

    @property
    def ffn_hidden(self) -> int:
        return 16 * max(1, round(8 * self.d_model / 3 / 16))  # SwiGLU at ~8/3 d, a multiple of 16

    def overrides(self, vocab_size: int, seq_len: int) -> list[str]:
        return [
            "model.preset=nano",
            f"model.name=d{self.d_model}l{self.n_layers}",
            f"model.vocab_size={vocab_size}",
            f"model.d_model={self.d_model}",
            f"model.n_layers={self.n_layers}",
            f"model.n_heads={self.n_heads}",
            f"model.n_kv_heads={self.n_heads}",
            f"model.ffn_hidden={self.ffn_hidden}",
            f"model.max_seq_len={seq_len}",
        ]

    def params(self, vocab_size: int) -> int:
        from llm.config import ModelConfig

        return ModelConfig(
            vocab_size=vocab_size,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            ffn_hidden=self.ffn_hidden,
        ).num_params()

    @property
    def label(self) -> str:
        return f"d{self.d_model}-L{self.n_layers}"


@dataclass
class ExperimentContext:
    name: str
    data: Path
    out: Path
    budget_min: float
    batch_size: int = 8
    seq_len: int = 128
    seed: int = 1337
    threads: int | None = None  # CPU threads per run (default: all cores)
    log: Callable[[str], None] = print
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.vocab_size = PreparedData.open(self.data).vocab_size

    @property
    def budget_s(self) -> float:
        return self.budget_min * 60.0

    @property
    def tiny(self) -> bool:
        return self.budget_min < TINY_BUDGET_MIN

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def remaining_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def throughput(self, shape: ModelShape, precision: str = "fp32") -> float:
        """Measured training tok/s of `shape` here (a few real optimizer steps)."""
        from llm.train.bench import bench_train

        r = bench_train(
            "nano",
            precision,
            self.batch_size,
            self.seq_len,
            steps=3,
            rounds=1,
            warmup=1,
            overrides=[*shape.overrides(self.vocab_size, self.seq_len), *self._threads()],
        )
        return r["tok_per_s"]

    def train(self, run: str, shape: ModelShape, tokens: int, extra: list[str] | None = None) -> dict[str, Any]:
        """One fresh pretraining run of about `tokens` tokens; returns its summary.json contents."""
        from llm.train.config import load_train_config
        from llm.train.pretrain import pretrain

        steps = max(10, round(tokens / self.tokens_per_step))
        overrides = [
            *shape.overrides(self.vocab_size, self.seq_len),
            f"data.dir={self.data}",
            f"train.batch_size={self.batch_size}",
            f"train.seq_len={self.seq_len}",
            f"train.max_steps={steps}",
            f"train.warmup_steps={max(1, steps // 20)}",
            f"train.seed={self.seed}",
            "train.device=cpu",
            "eval.every=0",
            "eval.sequences=128",
            "checkpoint.every=0",
            f"run.dir={self.out / 'runs'}",
            f"run.name={run}",
            f"run.log_every={max(1, steps // 50)}",
            "run.resume=false",
            "run.progress=false",
            *self._threads(),
            *(extra or []),
        ]
        t0 = time.perf_counter()
        result = pretrain(load_train_config(None, overrides))
        self.log(
            f"  {run}: {result.summary['tokens']:,} tokens in {time.perf_counter() - t0:.1f}s, "
            f"val loss {result.summary['final_val_loss']:.4f}"
        )
        return {**result.summary, "run_dir": str(result.run_dir)}

    def _threads(self) -> list[str]:
        return [f"train.threads={self.threads}"] if self.threads else []

    def command(self) -> str:
        return f"llm experiment {self.name} --budget-min {self.budget_min:g} --data {self.data} --out {self.out}"

    def machine(self) -> str:
        load = os.getloadavg()[0]
        return f"{os.cpu_count()} CPU cores, load average {load:.2f} at the end (other work on the machine slows runs)"
