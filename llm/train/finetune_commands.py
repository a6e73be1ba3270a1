"""`llm train sft`, `llm train dpo` and `llm lora merge`: parse options into config overrides, call one function."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]

lora_app = typer.Typer(
    help="LoRA adapters: merge an adapter checkpoint into a plain one.\n\n"
    "Example: llm lora merge runs/sft-lora/checkpoints/final --out ckpt/sft-merged",
    no_args_is_help=True,
)

_OVERRIDES = typer.Argument(None, metavar="KEY=VALUE", help="Dotted overrides, e.g. train.lr=1e-4 train.grad_accum=16.")
_CONFIG = typer.Option(None, "--config", "-c", help="YAML config (sections model/data/train/lora/dpo/eval/checkpoint/run).")


def _common(
    model: str,
    data: str,
    fmt: Optional[str],
    out: Optional[Path],
    name: Optional[str],
    lora_rank: Optional[int],
    lora_alpha: Optional[float],
    lora_targets: Optional[str],
    epochs: Optional[float],
    max_steps: Optional[int],
    bf16: bool,
    skip_bad: bool,
    fresh: bool,
    stage: str,
) -> list[str]:
    from llm.errors import ConfigError
    from llm.train.finetune import default_run_name

    if lora_rank is not None and lora_rank < 1:
        raise ConfigError(f"--lora-rank must be >= 1 (got {lora_rank}); leave it out for a full fine-tune")
    values = {
        "model.checkpoint": model,
        "data.path": data,
        "data.format": fmt,
        "run.out": out,
        "run.name": name or default_run_name(stage, str(out) if out else model),
        "lora.rank": lora_rank,
        "lora.alpha": lora_alpha,
        "lora.targets": f"[{lora_targets}]" if lora_targets else None,
        "train.epochs": epochs,
        "train.max_steps": max_steps,
        "train.precision": "bf16" if bf16 else None,
        "data.skip_bad": True if skip_bad else None,
        "run.resume": False if fresh else None,
    }
    if max_steps is not None and epochs is None:
        values["train.epochs"] = "null"  # --max-steps alone means steps, not the stage's default epoch
    return [f"{k}={v}" for k, v in values.items() if v is not None]


def _report(result, what: str) -> None:
    if result.run_dir is None:
        return
    s = result.summary
    if result.status == "interrupted":
        typer.echo(f"interrupted at step {s['steps']}; saved {result.checkpoint}; run the same command again to resume", err=True)
        raise SystemExit(130)
    val = s.get("final_val_loss")
    val_text = f", val loss {val:.4f}" if val is not None else ""
    typer.echo(
        f"{result.checkpoint}: {what}, {s['steps']} steps{val_text}, {s['throughput_tok_per_s']:,.0f} tok/s, "
        f"peak RSS {s['peak_rss_mb']:,.0f} MiB (summary: {result.run_dir / 'summary.json'})"
    )


def sft_cmd(
    overrides: Optional[list[str]] = _OVERRIDES,
    config: Optional[Path] = _CONFIG,
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint path or pulled model name to start from."),
    data: str = typer.Option(..., "--data", "-d", help="JSON/JSONL/Parquet file or hub dataset name."),
    fmt: Optional[str] = typer.Option(None, "--format", help="messages (default) | sharegpt | alpaca."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Final checkpoint directory (= run.out)."),
    name: Optional[str] = typer.Option(None, help="Run name: runs/NAME (default sft-<out or model>)."),
    lora_rank: Optional[int] = typer.Option(None, "--lora-rank", help="Train LoRA adapters of this rank (frozen base)."),
    lora_alpha: Optional[float] = typer.Option(None, "--lora-alpha", help="LoRA scale numerator (default 32)."),
    lora_targets: Optional[str] = typer.Option(None, "--lora-targets", help="Comma list of q,k,v,o,gate,up,down."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the data (default 1)."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps instead of epochs."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast (= train.precision=bf16)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out invalid rows instead of stopping."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore an existing checkpoint of this run."),
) -> None:
    """Supervised fine-tuning on chat rows, loss on assistant tokens only; rerun to resume after a stop.

    Example: llm train sft --model smollm2-135m-instruct --data runs/synth/sft.jsonl --out ckpt/sft --bf16

    Example (LoRA): llm train sft -m smollm2-135m-instruct -d chats.jsonl --lora-rank 16 --out ckpt/sft-lora
    """
    from llm.train.config import load_train_config
    from llm.train.sft import SFT_DEFAULTS, sft

    extra = _common(model, data, fmt, out, name, lora_rank, lora_alpha, lora_targets, epochs, max_steps, bf16,
                    skip_bad, fresh, "sft")
    cfg = load_train_config(config, list(overrides or []) + extra, defaults=SFT_DEFAULTS)
    _report(sft(cfg, log=lambda m: typer.echo(m, err=True)), "sft")


def dpo_cmd(
    overrides: Optional[list[str]] = _OVERRIDES,
    config: Optional[Path] = _CONFIG,
    model: str = typer.Option(..., "--model", "-m", help="The SFT checkpoint to improve (also the reference)."),
    data: str = typer.Option(..., "--data", "-d", help="Preference pairs: JSON/JSONL/Parquet file or hub name."),
    fmt: Optional[str] = typer.Option(None, "--format", help="pairs (default) | hh-rlhf | ultrafeedback."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Final checkpoint directory (= run.out)."),
    name: Optional[str] = typer.Option(None, help="Run name: runs/NAME (default dpo-<out or model>)."),
    beta: Optional[float] = typer.Option(None, help="KL strength beta (default 0.1)."),
    loss: Optional[str] = typer.Option(None, help="sigmoid (default) | ipo | hinge."),
    precompute_ref: bool = typer.Option(False, "--precompute-ref", help="One reference pass up front, cached beside the data."),
    lora_rank: Optional[int] = typer.Option(None, "--lora-rank", help="Train LoRA adapters; the reference is the base."),
    lora_alpha: Optional[float] = typer.Option(None, "--lora-alpha"),
    lora_targets: Optional[str] = typer.Option(None, "--lora-targets"),
    epochs: Optional[float] = typer.Option(None, help="Passes over the pairs (default 1)."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps instead of epochs."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out invalid rows instead of stopping."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore an existing checkpoint of this run."),
) -> None:
    """Direct Preference Optimization against a frozen reference (Rafailov et al. 2023).

    Example: llm train dpo --model ckpt/sft --data runs/synth/pairs.jsonl --beta 0.1 --out ckpt/dpo --bf16
    """
    from llm.train.config import load_train_config
    from llm.train.dpo import DPO_DEFAULTS, dpo

    extra = _common(model, data, fmt, out, name, lora_rank, lora_alpha, lora_targets, epochs, max_steps, bf16,
                    skip_bad, fresh, "dpo")
    extra += [f"{k}={v}" for k, v in {"dpo.beta": beta, "dpo.loss": loss}.items() if v is not None]
    if precompute_ref:
        extra.append("dpo.precompute_ref=true")
    cfg = load_train_config(config, list(overrides or []) + extra, defaults=DPO_DEFAULTS)
    _report(dpo(cfg, log=lambda m: typer.echo(m, err=True)), "dpo")


@lora_app.command("merge")
def lora_merge_cmd(
    adapter_ckpt: Path = typer.Argument(..., help="A checkpoint with adapter.safetensors."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the plain checkpoint."),
) -> None:
    """Fold a LoRA adapter into its base weights and write a plain checkpoint.

    Example: llm lora merge runs/sft-lora/checkpoints/final --out ckpt/sft-merged
    """
    from llm.train.finetune import merge_checkpoint

    typer.echo(str(merge_checkpoint(adapter_ckpt, out)))


def register(train_app: typer.Typer, app: typer.Typer) -> None:
    train_app.command("sft")(sft_cmd)
    train_app.command("dpo")(dpo_cmd)
    app.add_typer(lora_app, name="lora")
