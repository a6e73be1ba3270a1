"""`llm train …`, `llm plot`, `llm bench train|matmul|sft|moe`.

Commands parse options into config overrides and call one library function; heavy imports
(torch, matplotlib) happen inside the commands so `llm --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register", "train_app"]

train_app = typer.Typer(
    help="Train models: pretraining, SFT and DPO (one shared loop).\n\n"
    "Example: llm train pretrain --preset nano --data data/stdlib --max-steps 200",
    no_args_is_help=True,
)


def _shortcuts(**values: object) -> list[str]:
    return [f"{key}={value}" for key, value in values.items() if value is not None]


@train_app.command("pretrain")
def pretrain_cmd(
    overrides: Optional[list[str]] = typer.Argument(
        None, metavar="KEY=VALUE", help="Dotted overrides, e.g. train.lr=3e-4 model.n_layers=4."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML config (sections model/data/train/eval/checkpoint/run)."
    ),
    preset: Optional[str] = typer.Option(None, help="Model preset (= model.preset)."),
    data: Optional[Path] = typer.Option(None, help="Prepared data directory (= data.dir)."),
    name: Optional[str] = typer.Option(None, help="Run name: runs/NAME (= run.name)."),
    max_steps: Optional[int] = typer.Option(None, help="= train.max_steps."),
    max_tokens: Optional[int] = typer.Option(None, help="= train.max_tokens (wins over max_steps)."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast (= train.precision=bf16)."),
    wandb: bool = typer.Option(False, "--wandb", help="Mirror metrics to Weights & Biases (needs wandb installed)."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Ignore an existing checkpoint of this run (= run.resume=false)."
    ),
) -> None:
    """Pretrain a model on prepared token shards; rerun the same command to resume after a stop.

    Runs under torchrun too: torchrun --nproc-per-node 2 -m llm train pretrain ...

    Example: llm train pretrain --preset nano --data data/stdlib --name nano-stdlib train.lr=3e-3
    """
    from llm.config import preset_path
    from llm.train.config import load_train_config
    from llm.train.pretrain import pretrain

    if preset is not None:
        preset_path(preset)  # the cheap check first: a typo is named before data.dir is looked at
    extra = _shortcuts(
        **{
            "model.preset": preset,
            "data.dir": data,
            "run.name": name,
            "train.max_steps": max_steps,
            "train.max_tokens": max_tokens,
            "train.precision": "bf16" if bf16 else None,
            "run.wandb": True if wandb else None,
            "run.resume": False if fresh else None,
        }
    )
    cfg = load_train_config(config, list(overrides or []) + extra)  # options win over dotted overrides
    result = pretrain(cfg)
    if result.run_dir is None:
        return  # ranks other than 0 stay quiet
    s = result.summary
    if result.status == "interrupted":
        typer.echo(
            f"interrupted at step {s['steps']}; saved {result.checkpoint}; run the same command again to resume",
            err=True,
        )
        raise SystemExit(130)  # like a shell's Ctrl-C; typer.Exit's code is dropped when main() runs non-standalone
    typer.echo(
        f"{result.checkpoint}: {s['steps']} steps, {s['tokens']:,} tokens, val loss {s['final_val_loss']:.4f}, "
        f"val bpb {s['final_val_bpb']:.4f}, {s['throughput_tok_per_s']:,.0f} tok/s "
        f"(summary: {result.run_dir / 'summary.json'})"
    )


def plot_cmd(
    runs: list[Path] = typer.Argument(..., metavar="RUN", help="Run directories (runs/NAME)."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    title: Optional[str] = typer.Option(None, help="Plot title."),
    moe: bool = typer.Option(False, "--moe", help="Expert-load heat map and MaxVio of one MoE run instead."),
) -> None:
    """Plot training/validation loss against tokens, and the learning rate, for one or more runs.

    Example: llm plot runs/nano-stdlib runs/mini-stdlib --out loss.png
    Example: llm plot --moe runs/nano-moe --out experts.png
    """
    from llm.train.plot import plot_moe, plot_runs

    if moe and len(runs) != 1:
        raise typer.BadParameter("--moe plots one run at a time", param_hint="RUNS")
    typer.echo(str(plot_moe(runs[0], out, title) if moe else plot_runs(runs, out, title)))


def bench_train_cmd(
    preset: Optional[str] = typer.Option(None, help="Model preset (default: nanogpt-shape, nanoGPT's small shape)."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast."),
    batch_size: int = typer.Option(8, min=1),
    seq_len: int = typer.Option(256, min=1),
    steps: int = typer.Option(5, min=1, help="Timed steps per round."),
    rounds: int = typer.Option(3, min=1, help="Timed rounds (the median is reported)."),
    vs_nanogpt: Optional[Path] = typer.Option(
        None, "--vs-nanogpt", help="A nanoGPT checkout: time its model.py beside ours, rounds alternating."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Training throughput: tok/s, model FLOP/s and MFU against the measured matmul peak.

    Example: llm bench train --bf16 --vs-nanogpt ~/src/nanoGPT
    """
    from llm.train.bench import DEFAULT_BENCH_PRESET, bench_train

    r = bench_train(
        preset or DEFAULT_BENCH_PRESET, "bf16" if bf16 else "fp32", batch_size, seq_len, steps, rounds,
        nanogpt=vs_nanogpt,
    )
    if json_out:
        typer.echo(json.dumps(r))
        return
    mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a (run `llm bench matmul`)"
    rows = [
        ("preset", f"{r['preset']} ({r['params'] / 1e6:.2f}M params)"),
        ("shape", f"batch {r['batch_size']} x seq {r['seq_len']}, {r['precision']}, {r['threads']} threads"),
        ("tok/s (median / best)", f"{r['tok_per_s']:,.0f} / {r['tok_per_s_best']:,.0f}"),
        ("model GFLOP/s", f"{r['gflops_per_s']:.1f}"),
        ("MFU", mfu),
    ]
    for name, p in r.get("peers", {}).items():
        rows.append((f"{name} tok/s", f"{p['tok_per_s']:,.0f} / {p['tok_per_s_best']:,.0f}  (llm = {p['llm_speedup']:.2f}x)"))
    rows.append(("load average (1 min)", f"{r['load_avg_1m']:.2f} -> {r['load_avg_1m_end']:.2f}"))
    for k, v in rows:
        typer.echo(f"{k:28s} {v}")


def bench_matmul_cmd(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Measure this machine's best fp32/bf16 matmul GFLOP/s and cache it as the MFU denominator.

    Example: llm bench matmul
    """
    from llm.train.bench import bench_matmul
    from llm.train.flops import peak_file

    r = bench_matmul()
    if json_out:
        typer.echo(json.dumps(r))
        return
    for dtype, value in r["gflops"].items():
        typer.echo(f"{dtype:10s} {value:8.1f} GFLOP/s")
    typer.echo(f"{r['threads']} threads, load average {r['load_avg_1m']:.2f}; saved to {peak_file()}")


def bench_sft_cmd(
    model: str = typer.Option("smollm2-135m-instruct", "--model", "-m", help="Checkpoint path or pulled model name."),
    lora: int = typer.Option(0, "--lora", min=0, help="LoRA rank (alpha 32, all seven targets); 0 = full fine-tune."),
    vs_full: bool = typer.Option(False, "--vs-full", help="With --lora: also run the full fine-tune, with ratios."),
    vs_trl: bool = typer.Option(False, "--vs-trl", help="Also run TRL's SFTTrainer (+ peft) on the same data."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast."),
    seq_len: int = typer.Option(1024, min=16),
    batch_size: int = typer.Option(1, min=1),
    grad_accum: int = typer.Option(4, min=1, help="Micro-batches per optimizer step."),
    steps: int = typer.Option(3, min=1, help="Timed optimizer steps."),
    warmup: int = typer.Option(1, min=0, help="Untimed optimizer steps first."),
    packing: bool = typer.Option(True, "--packing/--no-packing", help="Best-fit packing (default) or padded rows."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """SFT throughput of the real step: supervised and all tokens/s, MFU, peak RSS (each run in a fresh process).

    Example: llm bench sft --bf16 --lora 16 --vs-full --vs-trl
    """
    from llm.train.bench_sft import SFTBenchSpec, bench_sft

    spec = SFTBenchSpec(
        model=model, lora=lora, precision="bf16" if bf16 else "fp32", seq_len=seq_len, batch_size=batch_size,
        grad_accum=grad_accum, steps=steps, warmup=warmup, packing=packing, threads=threads,
    )
    r = bench_sft(spec, vs_full=vs_full, vs_trl=vs_trl)
    if json_out:
        typer.echo(json.dumps(r))
        return
    runs = r["runs"]
    rows = [
        ("", [x["label"] for x in runs]),
        ("supervised tok/s", [f"{x['supervised_tok_per_s']:,.0f}" for x in runs]),
        ("tok/s", [f"{x['tok_per_s']:,.0f}" for x in runs]),
        ("step s (median)", [f"{x['step_s_median']:.2f}" for x in runs]),
        ("model GFLOP/s", [f"{x['gflops_per_s']:.1f}" for x in runs]),
        ("MFU", [f"{x['mfu']:.1%}" if x["mfu"] is not None else "n/a" for x in runs]),
        ("peak RSS MiB", [f"{x['peak_rss_mb']:,.0f}" for x in runs]),
        ("trainable params", [f"{x['trainable_params'] / 1e6:.2f}M" for x in runs]),
        ("load avg (1 min, end)", [f"{x['load_avg_1m']:.2f}" for x in runs]),
    ]
    for name, cells in rows:
        typer.echo(f"{name:22s}" + "".join(f"{c:>16s}" for c in cells))
    for name, value in r["ratios"].items():
        typer.echo(f"{name:30s} {value:.2f}x")
    peak = r["matmul_peak_gflops"]
    typer.echo(
        f"{r['model']}: {r['precision']}, batch {r['batch_size']} x {r['seq_len']} tokens"
        f"{' packed' if r['packing'] else ' padded'}, accumulation {r['grad_accum']}, {r['steps']} timed steps; "
        + (f"MFU against {peak:.0f} GFLOP/s" if peak else "MFU needs `llm bench matmul` first")
        + f"; load average {r['load_avg_1m_start']:.2f} -> {r['load_avg_1m_end']:.2f}"
    )


def bench_moe_cmd(
    preset: str = typer.Option("nano", help="Dense preset; the MoE variant swaps its FFN for top-k of n experts."),
    experts: int = typer.Option(8, min=1, help="Routed experts."),
    top_k: int = typer.Option(2, min=1, help="Experts per token."),
    tokens: int = typer.Option(4096, min=1, help="Tokens of the dispatch benchmark."),
    batch_size: int = typer.Option(8, min=1),
    seq_len: int = typer.Option(256, min=1),
    steps: int = typer.Option(3, min=1, help="Timed steps per round."),
    rounds: int = typer.Option(3, min=1, help="Rounds (alternating contenders; the median is reported)."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Mixture of Experts: grouped dispatch vs the textbook loop, and MoE vs dense training tok/s.

    Example: llm bench moe --preset micro --experts 8 --top-k 2
    """
    from llm.train.bench_moe import bench_moe

    r = bench_moe(preset, experts, top_k, tokens, batch_size, seq_len, steps, rounds, threads)
    if json_out:
        typer.echo(json.dumps(r))
        return
    d, m = r["dispatch"], r["model"]
    rows = [
        ("dispatch", f"{d['n_experts']} experts top-{d['top_k']}, {d['tokens']} tokens, D {d['d_model']}, expert F {d['expert_hidden']}"),
        ("grouped tok/s (fwd+bwd)", f"{d['grouped_tok_per_s']:,.0f}"),
        ("textbook loop tok/s", f"{d['loop_tok_per_s']:,.0f}"),
        ("grouped / loop", f"{d['speedup']:.2f}x (target >= 1.5x)"),
        ("max |diff| output / grads", f"{d['max_abs_diff_output']:.1e} / {d['max_abs_diff_grad']:.1e}"),
        ("model", f"{m['preset']}, batch {m['batch_size']} x {m['seq_len']}, fp32"),
        ("dense tok/s", f"{m['dense']['tok_per_s']:,.0f}  ({m['dense']['params_active'] / 1e6:.2f}M params)"),
        ("MoE tok/s", f"{m['moe']['tok_per_s']:,.0f}  ({m['moe']['params_total'] / 1e6:.2f}M total, "
                      f"{m['moe']['params_active'] / 1e6:.2f}M active)"),
        ("MoE / dense", f"{m['moe_vs_dense']:.2f}x (target >= 0.7x)"),
        ("threads, load average", f"{r['threads']}, {r['load_avg_1m']:.2f} -> {r['load_avg_1m_end']:.2f}"),
    ]
    for k, v in rows:
        typer.echo(f"{k:28s} {v}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `train`, `plot` and `bench train|matmul|sft|moe` to the `llm` app."""
    from llm.train.finetune_commands import register as register_finetune

    register_finetune(train_app, app)
    app.add_typer(train_app, name="train")
    app.command("plot")(plot_cmd)
    bench_app.command("train")(bench_train_cmd)
    bench_app.command("matmul")(bench_matmul_cmd)
    bench_app.command("sft")(bench_sft_cmd)
    bench_app.command("moe")(bench_moe_cmd)
