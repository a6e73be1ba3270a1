"""`runs/<name>/`: the files a training run leaves behind, and optional W&B mirroring.

    config.yaml     resolved config (re-runnable with -c)
    metrics.jsonl   one object per logged step; metrics.csv the same as a table
    eval.jsonl      one object per evaluation
    summary.json    the run's headline numbers (see `llm.train.summary`)
    checkpoints/    last/ (with train_state.pt, for resuming) and final/

Logs are appended line by line and flushed, so a killed run keeps everything up to the
kill; on resume, lines past the checkpoint's step are dropped because those steps are
trained again. Only rank 0 owns a RunDir. This module knows files, not training.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from llm.atomic import atomic_write_text
from llm.errors import ConfigError

__all__ = ["RunDir", "METRIC_FIELDS"]

METRIC_FIELDS = ["step", "tokens", "loss", "lr", "grad_norm", "tok_per_s", "mfu", "elapsed_s"]


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null (a NaN loss is reported in the error, not here)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunDir:
    def __init__(self, root: Path, name: str, wandb: bool = False, wandb_config: dict | None = None) -> None:
        self.path = Path(root) / name
        self.name = name
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self._wandb = _start_wandb(name, wandb_config or {}) if wandb else None

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last"

    @property
    def final_checkpoint(self) -> Path:
        return self.checkpoints / "final"

    def write_config(self, text: str) -> None:
        atomic_write_text(self.path / "config.yaml", text)

    def reset_logs(self, keep_until_step: int) -> None:
        """Keep log lines with step <= keep_until_step (0 = start afresh)."""
        for name in ("metrics.jsonl", "eval.jsonl"):
            f = self.path / name
            if not f.exists():
                continue
            kept = []
            for line in f.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= keep_until_step:
                        kept.append(line + "\n")
                except (json.JSONDecodeError, KeyError, TypeError):
                    break  # a line cut by a kill: everything after it is gone too
            atomic_write_text(f, "".join(kept))
        rows = [r for r in self.read_jsonl("metrics.jsonl")]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        f = self.path / name
        if not f.exists():
            return []
        return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]

    def _append(self, name: str, text: str) -> None:
        with open(self.path / name, "a") as fh:
            fh.write(text)
            fh.flush()

    def log_metrics(self, row: dict[str, Any]) -> None:
        row = {k: _clean(v) for k, v in row.items()}
        self._append("metrics.jsonl", json.dumps(row) + "\n")
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore").writerow(row)
        self._append("metrics.csv", buf.getvalue())
        if self._wandb is not None:
            self._wandb.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=row["step"])

    def log_eval(self, row: dict[str, Any]) -> None:
        row = {k: _clean(v) for k, v in row.items()}
        self._append("eval.jsonl", json.dumps(row) + "\n")
        if self._wandb is not None:
            self._wandb.log({f"val/{k}": v for k, v in row.items() if k != "step"}, step=row["step"])

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.path / "summary.json", json.dumps({k: _clean(v) for k, v in summary.items()}, indent=2))
        if self._wandb is not None:
            self._wandb.summary.update(summary)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _start_wandb(name: str, config: dict) -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise ConfigError("run.wandb=true (--wandb) needs the wandb package: pip install wandb") from exc
    return wandb.init(project="llm", name=name, config=config, resume="allow", id=name)
