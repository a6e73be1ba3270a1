"""`llm experiment precision`: bf16 autocast vs fp32, the loss at equal tokens and the speed ratio.

Both runs start from the same weights and see the same data; bf16 autocast runs matrix
multiplies in bfloat16 while weights, optimizer state, norms and the loss stay in float32.
"""

from __future__ import annotations

from pathlib import Path

from llm.experiments.report import fmt, markdown_table, write_csv, write_report
from llm.experiments.runner import ExperimentContext, ModelShape
from llm.train.plot import plot_runs, read_run

__all__ = ["run_precision"]


def run_precision(ctx: ExperimentContext) -> Path:
    shape = ModelShape(64, 2, 4) if ctx.tiny else ModelShape(192, 4, 6)
    rate = ctx.throughput(shape, "fp32")
    tokens = round(rate * max(ctx.remaining_s() * 0.85 / 1.6 - 1.5, 0.5) * 0.6)  # fp32 + the faster bf16 run
    ctx.log(f"precision: {shape.label}, fp32 and bf16 runs of ~{tokens:,} tokens")
    runs = {p: ctx.train(p, shape, tokens, [f"train.precision={p}"]) for p in ("fp32", "bf16")}
    a, _ = read_run(Path(runs["fp32"]["run_dir"]))
    b, _ = read_run(Path(runs["bf16"]["run_dir"]))
    rows = [
        {
            "step": x["step"],
            "tokens": x["tokens"],
            "loss_fp32": x["loss"],
            "loss_bf16": y["loss"],
            "diff": y["loss"] - x["loss"],
        }
        for x, y in zip(a, b)
    ]
    write_csv(ctx.out / "curves.csv", rows)
    plot_runs([Path(r["run_dir"]) for r in runs.values()], ctx.out / "curves.png", "fp32 vs bf16 autocast")
    speed = runs["bf16"]["throughput_tok_per_s"] / runs["fp32"]["throughput_tok_per_s"]
    delta = runs["bf16"]["final_val_loss"] - runs["fp32"]["final_val_loss"]
    table = markdown_table(
        [
            {"precision": p, **{k: r[k] for k in ("tokens", "final_val_loss", "final_val_bpb", "throughput_tok_per_s")}}
            for p, r in runs.items()
        ],
        ["precision", "tokens", "final_val_loss", "final_val_bpb", "throughput_tok_per_s"],
    )
    answer = (
        f"At {runs['fp32']['tokens']:,} tokens the bf16 validation loss is {fmt(delta)} from fp32 "
        f"(largest per-step training-loss gap {fmt(max(abs(r['diff']) for r in rows))}); bf16 autocast runs "
        f"**{speed:.2f}x** the fp32 speed on this machine (model {shape.label}; small models gain less because "
        "their time goes to elementwise work rather than matrix multiplies)."
    )
    sections = [("Result", table + "\n\n" + answer + "\n\n![curves](curves.png)")]
    return write_report(ctx.out / "report.md", "bf16 autocast vs fp32", ctx.command(), ctx.machine(), sections)
