"""`llm experiment accum-vs-batch`: the same effective batch by gradient accumulation vs a real batch.

Run A takes batch 8 per step; run B takes 4 micro-batches of 2 and accumulates. Same seed,
same initial weights, same windows in each optimizer step (the loader addresses samples by
global index). The report gives both curves and the largest loss difference over steps.
"""

from __future__ import annotations

from pathlib import Path

from llm.experiments.report import fmt, markdown_table, write_csv, write_report
from llm.experiments.runner import ExperimentContext, ModelShape
from llm.train.plot import plot_runs, read_run

__all__ = ["run_accum_vs_batch", "EXPLANATION"]

EXPLANATION = """\
They match because nothing in this model looks across the examples of a batch. RMSNorm
normalises each token's vector on its own, attention mixes positions within one sequence,
and the loss is the mean over all target tokens of the optimizer step: the trainer sums
each micro-batch's loss and divides by the number of targets in the whole step, so the
accumulated gradient is the same sum of per-example gradients as the big batch's. What is
left is float rounding: the sums are taken in a different order and matrix kernels block
a batch of 2 differently from a batch of 8, so the curves agree to a few decimal places
and drift apart only as rounding compounds through the optimizer.

With BatchNorm they would not match. BatchNorm normalises with the mean and variance of
the current (micro-)batch: 2 examples give noisier statistics than 8, so every activation,
hence the loss and its gradient, is different, and the running statistics are updated 4
times per step instead of once. Accumulation then reproduces the number of examples per
update but not the computation; that is one reason transformers use per-example
normalisation (LayerNorm, RMSNorm)."""


def run_accum_vs_batch(ctx: ExperimentContext) -> Path:
    shape = ModelShape(64, 2, 4) if ctx.tiny else ModelShape(128, 4, 4)
    rate = ctx.throughput(shape)
    tokens = round(rate * max(ctx.remaining_s() * 0.85 / 2 - 1.5, 0.5) * 0.8)  # micro-batches of 2 run slower
    ctx.log(f"accum-vs-batch: {shape.label}, 2 runs of ~{tokens:,} tokens")
    log_all = ["run.log_every=1"]
    big = ctx.train("batch8", shape, tokens, ["train.batch_size=8", "train.grad_accum=1", *log_all])
    acc = ctx.train("batch2-accum4", shape, tokens, ["train.batch_size=2", "train.grad_accum=4", *log_all])
    a, _ = read_run(Path(big["run_dir"]))
    b, _ = read_run(Path(acc["run_dir"]))
    rows = [
        {
            "step": x["step"],
            "tokens": x["tokens"],
            "loss_batch8": x["loss"],
            "loss_accum4x2": y["loss"],
            "abs_diff": abs(x["loss"] - y["loss"]),
        }
        for x, y in zip(a, b)
    ]
    write_csv(ctx.out / "curves.csv", rows)
    plot_runs(
        [Path(big["run_dir"]), Path(acc["run_dir"])], ctx.out / "curves.png", "batch 8 vs batch 2 x accumulation 4"
    )
    worst = max(rows, key=lambda r: r["abs_diff"])
    first10 = max(r["abs_diff"] for r in rows[:10])
    table = markdown_table(
        [
            {
                "run": "batch 8",
                "val_loss": big["final_val_loss"],
                "train_loss": big["final_train_loss"],
                "tok_per_s": big["throughput_tok_per_s"],
            },
            {
                "run": "batch 2 x accum 4",
                "val_loss": acc["final_val_loss"],
                "train_loss": acc["final_train_loss"],
                "tok_per_s": acc["throughput_tok_per_s"],
            },
        ],
        ["run", "val_loss", "train_loss", "tok_per_s"],
    )
    answer = (
        f"Largest training-loss difference over {len(rows)} steps: **{fmt(worst['abs_diff'])}** "
        f"(step {worst['step']}); "
        f"over the first 10 steps: {fmt(first10)}. Final validation loss difference: "
        f"{fmt(abs(big['final_val_loss'] - acc['final_val_loss']))}."
    )
    sections = [("Result", table + "\n\n" + answer + "\n\n![curves](curves.png)"), ("Why they match here", EXPLANATION)]
    return write_report(
        ctx.out / "report.md", "Gradient accumulation vs a real batch", ctx.command(), ctx.machine(), sections
    )
