"""Research experiments built on `llm.train`: each turns a question into runs, CSV, PNG and report.md.

`EXPERIMENTS` maps the CLI name to the function that runs it with an `ExperimentContext`.
"""

from llm.experiments.accum_vs_batch import run_accum_vs_batch
from llm.experiments.chinchilla import run_chinchilla
from llm.experiments.lr_sweep import run_lr_sweep
from llm.experiments.precision import run_precision
from llm.experiments.runner import ExperimentContext, default_data

EXPERIMENTS = {
    "chinchilla": run_chinchilla,
    "lr-sweep": run_lr_sweep,
    "accum-vs-batch": run_accum_vs_batch,
    "precision": run_precision,
}

__all__ = ["EXPERIMENTS", "ExperimentContext", "default_data"]
