"""Model FLOPs per token and this machine's measured matmul peak, for MFU.

FLOPs per trained token (forward + backward) = 6 * N_matmul + 12 * L * D * T, where
N_matmul counts the parameters used in matrix multiplies (the lm_head counts, a token
embedding lookup does not unless it is tied to the lm_head) and the second term is
attention's QK^T and AV (PaLM, Chowdhery et al. 2022, appendix B). This is the same count
nanoGPT's `estimate_mfu` uses, so the two compare.

The peak is what `llm bench matmul` measured on this machine (`llm.matmul_peak`, shared
with the inference benchmarks); this module re-exports its functions for the trainers.
"""

from __future__ import annotations

from llm.config import ModelConfig
from llm.matmul_peak import load_matmul_peak, measure_matmul_peak, peak_file, save_matmul_peak

__all__ = ["flops_per_token", "measure_matmul_peak", "load_matmul_peak", "save_matmul_peak", "peak_file"]


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    n = cfg.num_params(active=True)  # a Mixture of Experts: the experts one token runs
    if not cfg.tie_embeddings:
        n -= cfg.vocab_size * cfg.d_model  # the untied input embedding is a lookup, not a matmul
    return 6.0 * n + 12.0 * cfg.n_layers * cfg.d_model * seq_len
