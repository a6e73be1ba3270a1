"""`llm plot`: training and validation loss against tokens, and the LR schedule, for one or more runs;
`llm plot --moe RUN`: the expert-load heat map of a Mixture-of-Experts run.

Reads only the run directories' metrics.jsonl / eval.jsonl; matplotlib is imported lazily
(with the non-interactive Agg backend) so nothing else pays for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm.errors import ConfigError, DataError

__all__ = ["plot_runs", "plot_moe", "read_run"]


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


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("plotting needs matplotlib: pip install 'iclaw-llm[plot]'") from exc
    return plt


def _save(plt, fig, out: Path) -> Path:
    """Write the figure atomically (temp file + rename) and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out


def plot_runs(runs: list[Path], out: Path, title: str | None = None) -> Path:
    plt = _pyplot()
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
    return _save(plt, fig, out)


def plot_moe(run: Path, out: Path, title: str | None = None) -> Path:
    """Expert-load heat maps (one per MoE layer: experts x logged steps) and MaxVio over training."""
    plt = _pyplot()
    rows = [r for r in read_run(Path(run))[0] if r.get("moe")]
    if not rows:
        raise DataError(f"{run}/metrics.jsonl has no MoE statistics; train a model with a moe block (e.g. --preset nano-moe)")
    layers = [entry["layer"] for entry in rows[0]["moe"]]
    fig, axes = plt.subplots(len(layers) + 1, 1, figsize=(9, 1.8 * len(layers) + 2.5), sharex=True, squeeze=False)
    steps = [r["step"] for r in rows]
    extent = (steps[0], steps[-1], -0.5, len(rows[0]["moe"][0]["load"]) - 0.5)
    image = None
    for ax, (i, layer) in zip(axes[:-1, 0], enumerate(layers)):
        grid = [[r["moe"][i]["load"][e] for r in rows] for e in range(len(rows[0]["moe"][i]["load"]))]  # (E, steps)
        image = ax.imshow(grid, aspect="auto", origin="lower", extent=extent, cmap="viridis", interpolation="nearest")
        ax.set_ylabel(f"layer {layer}\nexpert")
    ax_vio = axes[-1, 0]
    for i, layer in enumerate(layers):
        ax_vio.plot(steps, [r["moe"][i]["max_vio"] for r in rows], lw=1.1, label=f"layer {layer}")
    ax_vio.set_ylabel("MaxVio")
    ax_vio.set_xlabel("step")
    ax_vio.grid(alpha=0.3)
    ax_vio.legend(fontsize=7, ncol=min(len(layers), 4))
    axes[0, 0].set_title(title or f"{Path(run).name}: fraction of assignments per expert")
    fig.colorbar(image, ax=axes[:-1, 0].tolist(), label="load fraction", shrink=0.9)
    return _save(plt, fig, out)
