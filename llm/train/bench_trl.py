"""TRL's side of `llm bench sft --vs-trl`: the same examples through `SFTTrainer` (+ peft for LoRA).

The checkpoint is exported once with `llm export hf` by the parent process (so the
export's memory is not counted here). The examples are our renderer's ids with labels
-100 wherever our mask is 0, so both sides learn exactly the same tokens. TRL packs them
itself (best-fit, padding-free: positions restart per example, as ours do), in bf16
autocast with fused AdamW, the same batch, accumulation, LR, clipping and LoRA rank/alpha/
targets. Gradient checkpointing is switched off (TRL turns it on by default, trading
speed for memory; our loop does not checkpoint), so both sides do the same work.

Timing: a trainer callback notes the clock at the end of every optimizer step; a wrapper
around TRL's collator counts the real and the supervised tokens it hands out, so step k
is what happened between the ends of steps k-1 and k, data collation included.
trl, peft and transformers are dev-only dependencies, imported here and nowhere else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from llm.errors import ConfigError

__all__ = ["export_for_trl", "measure_trl", "HF_LORA_TARGETS"]

# our LoRA target names -> the Linear names of transformers' Llama
HF_LORA_TARGETS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
                   "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}


def _require(spec) -> None:
    missing = [name for name in ("trl", "transformers") + (("peft",) if spec.lora else ()) if not _importable(name)]
    if missing:
        raise ConfigError(
            f"--vs-trl needs {', '.join(missing)}: install the dev extras (pip install -e '.[dev]') "
            "or pip install trl peft"
        )


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def export_for_trl(model: str, out: Path) -> Path:
    """The checkpoint as a transformers folder TRL can load."""
    from llm.export.hf import export_hf

    return export_hf(model, out)


def measure_trl(spec) -> dict[str, Any]:
    _require(spec)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never wait on a network
    import datasets
    import torch
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from llm.checkpoint import load_config
    from llm.hub import resolve_model
    from llm.tokenizer import Tokenizer
    from llm.train.bench_rows import bench_examples
    from llm.train.finetune import template_of
    from llm.train.sft_step_rates import TimedStep, step_rates

    torch.set_num_threads(spec.threads or os.cpu_count() or 1)
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    path = resolve_model(spec.model)
    config = load_config(path)
    total_steps = spec.warmup + spec.steps
    rows_needed = total_steps * spec.grad_accum * spec.batch_size
    examples = bench_examples(Tokenizer.load(path), template_of(config), spec.seq_len, rows_needed * spec.seq_len)
    data = datasets.Dataset.from_dict({
        "input_ids": [e.ids for e in examples],
        "labels": [[t if m else -100 for t, m in zip(e.ids, e.mask)] for e in examples],
    })
    model = AutoModelForCausalLM.from_pretrained(spec.hf_dir, dtype=torch.float32)
    peft_config = None
    if spec.lora:
        import peft

        targets = [HF_LORA_TARGETS[t] for t in ("q", "k", "v", "o", "gate", "up", "down")]
        peft_config = peft.LoraConfig(r=spec.lora, lora_alpha=spec.lora_alpha, lora_dropout=0.0,
                                      target_modules=targets, task_type="CAUSAL_LM")
    with _scratch() as out_dir:
        args = trl.SFTConfig(
            output_dir=out_dir,
            per_device_train_batch_size=spec.batch_size,
            gradient_accumulation_steps=spec.grad_accum,
            max_steps=total_steps,
            learning_rate=5e-5,
            lr_scheduler_type="constant",
            weight_decay=0.0,
            max_grad_norm=1.0,
            optim="adamw_torch_fused",
            bf16=spec.precision == "bf16",
            use_cpu=True,
            gradient_checkpointing=False,
            packing=spec.packing,
            packing_strategy="bfd",
            max_length=spec.seq_len,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=0,
        )
        trainer = trl.SFTTrainer(model=model, args=args, train_dataset=data,
                                 processing_class=AutoTokenizer.from_pretrained(spec.hf_dir), peft_config=peft_config)
        counts = {"tokens": 0, "supervised": 0, "attended": 0}
        trainer.data_collator = _counting(trainer.data_collator, counts)
        clock = _step_clock(TrainerCallback, counts)
        trainer.add_callback(clock)
        trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    first = clock.marks[spec.warmup - 1] if spec.warmup else clock.start
    timed = clock.marks[spec.warmup:]  # (time, tokens, supervised, attended) at the ends of the timed steps
    steps = [TimedStep(*(y - x for x, y in zip(a, b))) for a, b in zip([first] + timed[:-1], timed)]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "trainable_params": trainable,
        "threads": torch.get_num_threads(),
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__,
                     **({"peft": peft.__version__} if spec.lora else {})},
        **step_rates(steps, config, trainable if spec.lora else 0, losses),
    }


def _scratch():
    import tempfile

    return tempfile.TemporaryDirectory(prefix="llm-bench-trl-")


def _doc_lengths(batch) -> list[int]:
    if "attention_mask" in batch:  # padded rows, one example each
        return batch["attention_mask"].sum(-1).tolist()
    starts = (batch["position_ids"].flatten() == 0).nonzero().flatten().tolist()  # padding-free: restarts
    return [b - a for a, b in zip(starts, starts[1:] + [batch["position_ids"].numel()])]


def _counting(collate, counts: dict[str, int]):
    def wrapped(features):
        batch = collate(features)
        lengths = _doc_lengths(batch)
        counts["tokens"] += sum(lengths)
        counts["attended"] += sum(n * n for n in lengths)
        counts["supervised"] += int((batch["labels"][..., 1:] != -100).sum())  # HF shifts labels by one
        return batch

    return wrapped


def _step_clock(base: type, counts: dict[str, int]):
    """A TrainerCallback (built from transformers' class, imported lazily) noting each step's end."""

    class StepClock(base):
        def __init__(self) -> None:
            self.start = self._now()
            self.marks: list[tuple[float, int, int, int]] = []

        @staticmethod
        def _now() -> tuple[float, int, int, int]:
            return time.perf_counter(), counts["tokens"], counts["supervised"], counts["attended"]

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = self._now()

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(self._now())

    return StepClock()
