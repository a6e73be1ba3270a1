"""`llm plot`: training and validation loss against tokens, and the LR schedule, for one or more runs.

Reads only the run directories' metrics.jsonl / eval.jsonl; matplotlib is imported lazily
(with the non-interactive Agg backend) so nothing else pays for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm.errors import ConfigError, DataError

__all__ = ["plot_runs", "read_run"]


def read_run(path: Path) -> tuple[list[dict], list[dict]]:
    """(metrics rows, eval rows) of a run directory; DataError when it holds no metrics."""
    path = Path(path)
    f = path / "metrics.jsonl"
    if not f.exists():
        raise DataError(f"{path} is not a run directory (no metrics.jsonl); runs live in runs/<name>/")
    rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    ev = path / "eval.jsonl"
    evals = [json.loads(line) for line in ev.read_text().splitlines() if line.strip()] if ev.exists() else []
    return rows, evals


def plot_runs(runs: list[Path], out: Path, title: str | None = None) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("plotting needs matplotlib: pip install 'iclaw-llm[plot]'") from exc
    data = [(Path(r), *read_run(r)) for r in runs]
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, height_ratios=(3, 1))
    for i, (path, rows, evals) in enumerate(data):
        color = f"C{i % 10}"
        ax_loss.plot(
            [r["tokens"] for r in rows], [r["loss"] for r in rows], color=color, lw=1.2, label=f"{path.name} train"
        )
        if evals:
            ax_loss.plot(
                [e["tokens"] for e in evals],
                [e["val_loss"] for e in evals],
                color=color,
                ls="--",
                marker="o",
                ms=3,
                label=f"{path.name} val",
            )
        ax_lr.plot([r["tokens"] for r in rows], [r["lr"] for r in rows], color=color, lw=1.2)
    ax_loss.set_ylabel("loss (nats/token)")
    ax_loss.set_title(title or "loss vs tokens")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("tokens")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out
