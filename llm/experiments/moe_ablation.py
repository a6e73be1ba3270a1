"""`llm experiment moe-ablation`: dense vs top-2 vs top-4 Mixture of Experts, and three ways to balance.

Five runs on the same data, seed and token budget, all with the same *active* parameters
per token: the dense model's SwiGLU of width F, 8 experts of width F/2 with top-2, and 8
of width F/4 with top-4 (fine-grained experts, DeepSeekMoE §3.1). At top-2 the balancing
method varies: DeepSeek-V3's aux-loss-free bias, the Switch/GShard auxiliary loss, none.
The report gives validation loss, MaxVio (max load / mean load - 1, averaged over the
second half of training), training tokens/s and total vs active parameters, with the loss
curves, MaxVio curves and expert-load heat maps.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from llm.config import ModelConfig, MoEConfig
from llm.experiments.report import fmt, markdown_table, new_figure, save_figure, write_csv, write_report
from llm.experiments.runner import ExperimentContext, ModelShape
from llm.train.plot import plot_moe, plot_runs, read_run

__all__ = ["run_moe_ablation", "ABLATION_RUNS"]

N_EXPERTS = 8
# run name -> (top_k or None for dense, balance)
ABLATION_RUNS: dict[str, tuple[int | None, str]] = {
    "dense": (None, "none"),
    "top2-aux_free": (2, "aux_free"),
    "top4-aux_free": (4, "aux_free"),
    "top2-aux_loss": (2, "aux_loss"),
    "top2-none": (2, "none"),
}


def _moe_spec(shape: ModelShape, top_k: int, balance: str) -> MoEConfig:
    return MoEConfig(
        n_experts=N_EXPERTS, top_k=top_k, expert_hidden=shape.ffn_hidden // top_k, balance=balance,
        bias_update_rate=0.001, router_z_loss_coef=0.001,
    )


def _overrides(spec: MoEConfig | None) -> list[str]:
    if spec is None:
        return []
    return [f"model.moe.{k}={v}" for k, v in spec.model_dump(exclude_none=True).items()]


def _model_config(ctx: ExperimentContext, shape: ModelShape, spec: MoEConfig | None) -> ModelConfig:
    return ModelConfig(
        vocab_size=ctx.vocab_size, d_model=shape.d_model, n_layers=shape.n_layers, n_heads=shape.n_heads,
        ffn_hidden=shape.ffn_hidden, max_seq_len=ctx.seq_len, moe=spec,
    )


def _moe_rate(ctx: ExperimentContext, shape: ModelShape, spec: MoEConfig) -> float:
    from llm.train.bench import bench_train

    threads = [f"train.threads={ctx.threads}"] if ctx.threads else []
    r = bench_train(
        "nano", "fp32", ctx.batch_size, ctx.seq_len, steps=3, rounds=1, warmup=1,
        overrides=[*shape.overrides(ctx.vocab_size, ctx.seq_len), *_overrides(spec), *threads],
    )
    return r["tok_per_s"]


def _max_vio(rows: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """(mean MaxVio over the second half of the logged steps, MaxVio at the last logged step)."""
    vio = [r["moe/max_vio"] for r in rows if "moe/max_vio" in r]
    if not vio:
        return None, None
    return statistics.fmean(vio[len(vio) // 2 :]), vio[-1]


def run_moe_ablation(ctx: ExperimentContext) -> Path:
    shape = ModelShape(64, 2, 4) if ctx.tiny else ModelShape(128, 4, 4)
    specs = {name: (None if k is None else _moe_spec(shape, k, b)) for name, (k, b) in ABLATION_RUNS.items()}
    dense_rate = ctx.throughput(shape)
    moe_rate = _moe_rate(ctx, shape, specs["top2-aux_free"])
    seconds_per_token = 1 / dense_rate + (len(specs) - 1) / moe_rate
    tokens = round(max(ctx.remaining_s() * 0.8 - 3.0 * len(specs), 1.0) / seconds_per_token)
    ctx.log(
        f"moe-ablation: {shape.label}, {len(specs)} runs of ~{tokens:,} tokens "
        f"(dense {dense_rate:,.0f} tok/s, top-2 MoE {moe_rate:,.0f} tok/s measured)"
    )
    results = []
    for name, spec in specs.items():
        summary = ctx.train(name, shape, tokens, _overrides(spec))
        rows, _ = read_run(Path(summary["run_dir"]))
        vio_mean, vio_last = _max_vio(rows)
        cfg = _model_config(ctx, shape, spec)
        results.append(
            {
                "run": name,
                "top_k": "-" if spec is None else spec.top_k,
                "balance": "-" if spec is None else spec.balance,
                "tokens": summary["tokens"],
                "val_loss": summary["final_val_loss"],
                "max_vio": vio_mean,
                "max_vio_last": vio_last,
                "tok_per_s": summary["throughput_tok_per_s"],
                "params_total": cfg.num_params(),
                "params_active": cfg.num_params(active=True),
                "run_dir": summary["run_dir"],
            }
        )
    write_csv(ctx.out / "runs.csv", results)
    by = {r["run"]: r for r in results}
    plot_runs([Path(r["run_dir"]) for r in results], ctx.out / "curves.png", "dense vs MoE at equal active parameters")
    _plot_max_vio(results, ctx.out / "maxvio.png")
    heat = {}
    for name in ("top2-aux_free", "top2-aux_loss", "top2-none"):
        heat[name] = plot_moe(Path(by[name]["run_dir"]), ctx.out / f"experts_{name}.png").name
    columns = ["run", "top_k", "balance", "tokens", "val_loss", "max_vio", "tok_per_s", "params_total", "params_active"]
    headers = ["run", "top-k", "balance", "tokens", "val loss", "MaxVio (2nd half)", "tok/s", "total params", "active params"]
    table = markdown_table(results, columns, headers)
    sections = [
        ("Result", table + "\n\n" + _answers(by) + "\n\n![loss curves](curves.png)\n\n![MaxVio](maxvio.png)"),
        ("Expert load", "\n\n".join(f"{name}:\n\n![{name}]({png})" for name, png in heat.items())),
        ("Setup", _setup(shape, results[0]["tokens"], ctx)),
    ]
    return write_report(ctx.out / "report.md", "Mixture of Experts ablation", ctx.command(), ctx.machine(), sections)


def _answers(by: dict[str, dict[str, Any]]) -> str:
    dense, top2, top4 = by["dense"], by["top2-aux_free"], by["top4-aux_free"]
    aux, none = by["top2-aux_loss"], by["top2-none"]
    lines = []
    verdict = "lower" if top2["val_loss"] < dense["val_loss"] else "not lower"
    lines.append(
        f"- **top-2 vs dense** (equal active parameters, {fmt(top2['params_active'])} vs {fmt(dense['params_active'])}): "
        f"validation loss {fmt(top2['val_loss'])} vs {fmt(dense['val_loss'])}, {verdict} "
        f"({fmt(top2['val_loss'] - dense['val_loss'])}); top-4 of finer experts: {fmt(top4['val_loss'])}. "
        f"The MoE trains at {top2['tok_per_s'] / dense['tok_per_s']:.2f}x the dense tokens/s."
    )
    if aux["max_vio"] is not None and top2["max_vio"] is not None:
        rel = (top2["val_loss"] - aux["val_loss"]) / aux["val_loss"]
        lines.append(
            f"- **aux-free vs aux loss** (top-2): MaxVio {fmt(top2['max_vio'])} vs {fmt(aux['max_vio'])} "
            f"({'below' if top2['max_vio'] < aux['max_vio'] else 'not below'}); loss {fmt(top2['val_loss'])} vs "
            f"{fmt(aux['val_loss'])} ({rel:+.2%}; the target is at most +1%). Without balancing: MaxVio "
            f"{fmt(none['max_vio'])}, loss {fmt(none['val_loss'])}."
        )
    lines.append(
        "- Each expert sees only its share of the tokens, so a budget of minutes measures early training, "
        "where the MoE's extra capacity has had little data to use. Tokens/s were measured on a shared "
        "machine (load average above) and vary from run to run."
    )
    return "\n".join(lines)


def _setup(shape: ModelShape, tokens: int, ctx: ExperimentContext) -> str:
    return (
        f"Model {shape.label} (d_model {shape.d_model}, {shape.n_layers} layers, SwiGLU width {shape.ffn_hidden}); "
        f"MoE runs replace every block's feed-forward by {N_EXPERTS} experts of width {shape.ffn_hidden}/k with "
        f"top-k routing (softmax router, z-loss 1e-3; aux loss coefficient 0.01; bias update rate 1e-3). "
        f"Each run: ~{tokens:,} tokens, batch {ctx.batch_size} x {ctx.seq_len}, seed {ctx.seed}, fp32."
    )


def _plot_max_vio(results: list[dict[str, Any]], out: Path) -> Path:
    fig, ax = new_figure(figsize=(8, 4))
    for r in results:
        rows, _ = read_run(Path(r["run_dir"]))
        pts = [(x["step"], x["moe/max_vio"]) for x in rows if "moe/max_vio" in x]
        if pts:
            ax.plot(*zip(*pts), lw=1.2, label=r["run"])
    ax.set_xlabel("step")
    ax.set_ylabel("MaxVio (mean over layers)")
    ax.set_title("load imbalance during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out)
