"""`llm experiment lr-sweep`: five peak learning rates, one model, loss at a fixed token count.

Every run sees the same data in the same order (same seed) for the same number of tokens
with the same cosine schedule; only the peak LR differs. The answer is the LR with the
lowest final validation loss, and whether it sits inside the sweep or at its edge.
"""

from __future__ import annotations

from pathlib import Path

from llm.experiments.report import fmt, markdown_table, new_figure, save_figure, write_csv, write_report
from llm.experiments.runner import ExperimentContext, ModelShape
from llm.train.plot import plot_runs

__all__ = ["run_lr_sweep", "LEARNING_RATES"]

LEARNING_RATES = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]


def run_lr_sweep(ctx: ExperimentContext) -> Path:
    shape = ModelShape(64, 2, 4) if ctx.tiny else ModelShape(128, 4, 4)
    rate = ctx.throughput(shape)
    per_run = max(ctx.remaining_s() * 0.85 / len(LEARNING_RATES) - 1.5, 0.5)
    tokens = round(rate * per_run)
    ctx.log(f"lr-sweep: {shape.label}, {len(LEARNING_RATES)} runs of ~{tokens:,} tokens")
    rows = []
    for lr in LEARNING_RATES:
        s = ctx.train(f"lr-{lr:g}", shape, tokens, [f"train.lr={lr}"])
        rows.append(
            {
                "lr": lr,
                "tokens": s["tokens"],
                "val_loss": s["final_val_loss"],
                "val_bpb": s["final_val_bpb"],
                "train_loss": s["final_train_loss"],
                "grad_norm_mean": s["grad_norm_mean"],
                "run_dir": s["run_dir"],
            }
        )
    write_csv(ctx.out / "lr_sweep.csv", rows)
    best = min(rows, key=lambda r: r["val_loss"])
    fig, ax = new_figure(figsize=(6, 4))
    ax.plot([r["lr"] for r in rows], [r["val_loss"] for r in rows], "o-")
    ax.plot([best["lr"]], [best["val_loss"]], "*", ms=14, color="C3")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel(f"validation loss at {rows[0]['tokens']:,} tokens")
    ax.grid(alpha=0.3)
    save_figure(fig, ctx.out / "lr_sweep.png")
    plot_runs([Path(r["run_dir"]) for r in rows], ctx.out / "curves.png", "training curves per peak LR")
    edge = best["lr"] in (LEARNING_RATES[0], LEARNING_RATES[-1])
    answer = (
        f"Best peak LR: **{best['lr']:g}** (validation loss {fmt(best['val_loss'])} after {best['tokens']:,} tokens, "
        f"model {shape.label}, cosine schedule, AdamW). "
        + (
            "It lies at the edge of the sweep: the true optimum may be beyond it."
            if edge
            else "It lies inside the sweep."
        )
    )
    sections = [
        ("Result", markdown_table(rows, ["lr", "tokens", "val_loss", "val_bpb", "train_loss", "grad_norm_mean"])),
        ("Plots", "![loss vs LR](lr_sweep.png)\n\n![curves](curves.png)"),
        ("Answer", answer),
    ]
    return write_report(ctx.out / "report.md", "Learning-rate sweep", ctx.command(), ctx.machine(), sections)
