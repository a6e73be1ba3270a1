"""`llm bench sft`: fine-tuning throughput of the SFT stage's own optimizer step, full or LoRA.

Each configuration runs in a fresh Python process (`python -m llm.train.bench_sft SPEC OUT`),
so the peak RSS it reports is its own and not what an earlier configuration left behind.
Our side is the real thing: `start_model` (checkpoint, LoRA), the shared renderer and
packing, `TrainLoop.train_step` (autocast, accumulation, clipping, fused AdamW) and
`sft.sft_loss_sum`, on synthetic tool-use chats (`bench_rows`). With `vs_trl` the same
rendered examples go through TRL's `SFTTrainer` (+ peft for LoRA), see `bench_trl`.

Rates count real tokens (padding excluded) of the timed steps, after warm-up steps, and
are medians over those steps (one step slowed by another process does not move them). MFU
divides the FLOPs the step needs by the matmul peak `llm bench matmul` measured: 6 per
weight and token for trained matrices, 4 for frozen ones (no weight gradient), the output
head only at supervised positions (the SFT loss runs it there alone), and attention within
each document, 12·L·D per query-key pair (the convention of `llm.train.flops`, which counts
a whole window as one document). This module knows nothing about the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from llm.errors import LLMError, TrainingError
from llm.train.sft_step_rates import TimedStep, step_rates

__all__ = ["SFTBenchSpec", "bench_sft", "run_spec"]


@dataclass(frozen=True)
class SFTBenchSpec:
    model: str  # checkpoint path or pulled name
    impl: str = "llm"  # "llm" | "trl"
    lora: int = 0  # adapter rank; 0 = full fine-tune
    lora_alpha: float = 32.0
    precision: str = "bf16"
    seq_len: int = 1024
    batch_size: int = 1
    grad_accum: int = 4
    steps: int = 3  # timed optimizer steps
    warmup: int = 1  # untimed optimizer steps first
    packing: bool = True
    threads: int | None = None
    hf_dir: str | None = None  # trl only: the checkpoint exported with `llm export hf`

    @property
    def label(self) -> str:
        return f"{self.impl} " + (f"LoRA r{self.lora}" if self.lora else "full")


def _measure_llm(spec: SFTBenchSpec) -> dict[str, Any]:
    import torch

    from llm.data.packing import PackedRows
    from llm.lora import LoRALinear
    from llm.train.bench_rows import bench_examples
    from llm.train.config import load_train_config
    from llm.train.distributed import setup_distributed
    from llm.train.finetune import start_model, template_of
    from llm.train.flops import flops_per_token
    from llm.train.loop import TrainLoop
    from llm.train.sft import SFT_DEFAULTS, sft_loss_sum

    total_steps = spec.warmup + spec.steps
    cfg = load_train_config(
        None,
        [
            f"model.checkpoint={spec.model}",
            f"train.precision={spec.precision}",
            f"train.batch_size={spec.batch_size}",
            f"train.grad_accum={spec.grad_accum}",
            f"train.seq_len={spec.seq_len}",
            f"train.max_steps={total_steps}",
            "train.epochs=null",
            "train.warmup_steps=0",
            "train.device=cpu",
            f"lora.rank={spec.lora}",
            f"lora.alpha={spec.lora_alpha}",
            f"data.packing={str(spec.packing).lower()}",
            *([f"train.threads={spec.threads}"] if spec.threads else []),
        ],
        defaults=SFT_DEFAULTS,
    )
    start = start_model(cfg, "sft")
    tok, config = start.ck.tokenizer, start.config
    rows_needed = total_steps * spec.grad_accum * spec.batch_size
    examples = bench_examples(tok, template_of(config), spec.seq_len, rows_needed * spec.seq_len)
    rows = PackedRows(examples, spec.seq_len, spec.packing, tok.special_tokens.get(config.eos_token, 0))
    handed = [0, 0]  # real (non-padding) tokens and the sum of squared document lengths so far

    def batches(first: int, size: int):
        picked = [(first + j) % len(rows) for j in range(size)]
        lengths = [len(rows.examples[i].ids) for r in picked for i in rows.rows[r]]
        handed[0] += sum(lengths)
        handed[1] += sum(n * n for n in lengths)
        return rows.batch(picked)

    dist = setup_distributed(cfg.train.device, cfg.train.threads)
    loop = TrainLoop(
        cfg, start.ck.model, config, None, batches, sft_loss_sum, lambda m: {}, dist, None, "bench",
        total_steps=total_steps, tokens_per_sample=spec.seq_len, summary_fields={},
        flops_per_token=flops_per_token(config, spec.seq_len), peak_flops=None,
    )
    losses, steps = [], []
    for step in range(total_steps):
        t0, (tokens0, attended0) = time.perf_counter(), handed
        loss, _ = loop.train_step()
        loop.stats.samples += loop.samples_per_step
        losses.append(loss)
        if step >= spec.warmup:
            seconds = time.perf_counter() - t0
            steps.append(TimedStep(seconds, handed[0] - tokens0, int(loop.last_targets), handed[1] - attended0))
    adapted = [m for m in loop.model.modules() if isinstance(m, LoRALinear)]
    adapter_weights = sum(spec.lora * (m.in_features + m.out_features) for m in adapted)
    return {
        "params": start.total,
        "trainable_params": start.trainable,
        "adapted_layers": len(adapted),
        "threads": torch.get_num_threads(),
        **step_rates(steps, config, adapter_weights, losses),
    }


def run_spec(spec: SFTBenchSpec) -> dict[str, Any]:
    """Measure one configuration in this process (the worker side of `bench_sft`)."""
    from llm.train.finetune import peak_rss_mb

    if spec.impl == "trl":
        from llm.train.bench_trl import measure_trl

        result = measure_trl(spec)
    else:
        result = _measure_llm(spec)
    return {**asdict(spec), "label": spec.label, **result, "peak_rss_mb": peak_rss_mb(), "load_avg_1m": os.getloadavg()[0]}


def _isolated(spec: SFTBenchSpec) -> dict[str, Any]:
    """`run_spec` in a fresh interpreter; its error, if any, comes back as one line."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run(
            [sys.executable, "-m", "llm.train.bench_sft", json.dumps(asdict(spec)), str(out)],
            capture_output=True, text=True,
        )
        doc = json.loads(out.read_text()) if out.exists() else {}
    if "error" in doc:
        raise TrainingError(f"{spec.label}: {doc['error']}")
    if proc.returncode != 0 or not doc:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise TrainingError(f"{spec.label}: benchmark process failed ({lines[-1] if lines else f'exit {proc.returncode}'})")
    return doc


def bench_sft(base: SFTBenchSpec, vs_full: bool = False, vs_trl: bool = False) -> dict[str, Any]:
    """Run `base` (and a full fine-tune beside a LoRA one, and TRL's counterparts) each in its own process."""
    from llm.train.flops import load_matmul_peak

    specs = [base]
    if vs_full and base.lora:
        specs.append(replace(base, lora=0))
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="llm-bench-sft-") as tmp:
        if vs_trl:
            from llm.train.bench_trl import export_for_trl

            hf_dir = export_for_trl(base.model, Path(tmp) / "hf")
            specs += [replace(s, impl="trl", hf_dir=str(hf_dir)) for s in list(specs)]
        runs = [_isolated(s) for s in specs]
    peak = load_matmul_peak(base.precision)
    for r in runs:
        r["mfu"] = r["gflops_per_s"] * 1e9 / peak if peak else None
    return {
        "model": base.model,
        "precision": base.precision,
        "seq_len": base.seq_len,
        "batch_size": base.batch_size,
        "grad_accum": base.grad_accum,
        "packing": base.packing,
        "steps": base.steps,
        "warmup": base.warmup,
        "matmul_peak_gflops": peak / 1e9 if peak else None,
        "load_avg_1m_start": load_start,
        "load_avg_1m_end": os.getloadavg()[0],
        "runs": runs,
        "ratios": _ratios(runs),
    }


def _ratios(runs: list[dict[str, Any]]) -> dict[str, float]:
    """LoRA vs full fine-tune (ours), ours vs TRL for each variant: tok/s and peak RSS."""
    by = {r["label"]: r for r in runs}
    out = {}
    pairs = [(f"llm LoRA r{r['lora']}", "llm full", "lora_vs_full") for r in runs if r["impl"] == "llm" and r["lora"]]
    pairs += [(r["label"], "trl" + r["label"][3:], f"llm_vs_trl_{'lora' if r['lora'] else 'full'}")
              for r in runs if r["impl"] == "llm"]
    for a, b, name in pairs:
        if a in by and b in by:
            out[f"{name}_tok_per_s"] = by[a]["tok_per_s"] / by[b]["tok_per_s"]
            out[f"{name}_peak_rss"] = by[a]["peak_rss_mb"] / by[b]["peak_rss_mb"]
    return out


def _worker(spec_json: str, out: str) -> int:
    spec = SFTBenchSpec(**json.loads(spec_json))
    try:
        doc = run_spec(spec)
        code = 0
    except LLMError as exc:
        doc, code = {"error": str(exc)}, 1
    Path(out).write_text(json.dumps(doc))
    return code


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], sys.argv[2]))
