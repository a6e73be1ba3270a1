"""Research experiments built on `llm.train`: each turns a question into runs, CSV, PNG and report.md.

`EXPERIMENTS` maps the CLI name to the function that runs it with an `ExperimentContext`.
These names load on first use (PEP 562), so `llm experiment --help` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm.experiments.runner import ExperimentContext, default_data

__all__ = ["EXPERIMENTS", "ExperimentContext", "default_data"]


def _experiments() -> dict:
    from llm.experiments.accum_vs_batch import run_accum_vs_batch
    from llm.experiments.chinchilla import run_chinchilla
    from llm.experiments.lr_sweep import run_lr_sweep
    from llm.experiments.moe_ablation import run_moe_ablation
    from llm.experiments.precision import run_precision

    return {
        "chinchilla": run_chinchilla,
        "lr-sweep": run_lr_sweep,
        "accum-vs-batch": run_accum_vs_batch,
        "precision": run_precision,
        "moe-ablation": run_moe_ablation,
    }


def __getattr__(name: str):
    if name == "EXPERIMENTS":
        globals()[name] = value = _experiments()
        return value
    if name in ("ExperimentContext", "default_data"):
        from llm.experiments import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
