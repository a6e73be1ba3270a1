"""The Hugging Face llama folder layout, shared by `llm export hf` and `llm import hf`.

Tensor names on both sides, the Q/K row permutation between the two RoPE layouts, and the
`llm_export` block of config.json that carries the checkpoint fields HF has no key for.
Keeping them in one place means the two directions cannot drift apart.
"""

from __future__ import annotations

import torch

__all__ = ["LAYER_NAMES", "TOP_NAMES", "EXPORT_BLOCK", "EXPORT_FIELDS", "hf_name", "permute_rope_rows"]

# HF per-layer suffix (after `model.layers.{i}.`) → ours (after `blocks.{i}.`).
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn.wq.weight",
    "self_attn.k_proj.weight": "attn.wk.weight",
    "self_attn.v_proj.weight": "attn.wv.weight",
    "self_attn.o_proj.weight": "attn.wo.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn.w_gate.weight",
    "mlp.up_proj.weight": "ffn.w_up.weight",
    "mlp.down_proj.weight": "ffn.w_down.weight",
}
# HF names outside the layers → ours.
TOP_NAMES = {
    "model.embed_tokens.weight": "tok_emb.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
}

# config.json key written by the exporter; its fields are ModelConfig fields.
EXPORT_BLOCK = "llm_export"
EXPORT_FIELDS = ("name", "tokenizer", "dtype", "rope_style")

_OUR_LAYER_NAMES = {ours: theirs for theirs, ours in LAYER_NAMES.items()}
_OUR_TOP_NAMES = {ours: theirs for theirs, ours in TOP_NAMES.items()}


def hf_name(key: str) -> str | None:
    """The HF tensor name of one of our state-dict keys (None if it has none)."""
    if key in _OUR_TOP_NAMES:
        return _OUR_TOP_NAMES[key]
    head, _, rest = key.partition(".")
    layer, _, suffix = rest.partition(".")
    if head == "blocks" and layer.isdigit() and suffix in _OUR_LAYER_NAMES:
        return f"model.layers.{layer}.{_OUR_LAYER_NAMES[suffix]}"
    return None


def permute_rope_rows(w: torch.Tensor, n_heads: int, to: str) -> torch.Tensor:
    """Reorder a Q or K projection's rows, head by head, between the two RoPE layouts (exact).

    to="half": the rows of interleaved pair i, (2i, 2i+1), move to (i, i + E/2), where HF's
    rotate-half applies the same frequency; to="interleaved" undoes it.
    """
    rows, d = w.shape
    e = rows // n_heads  # head dim E
    assert to in ("half", "interleaved") and e * n_heads == rows and e % 2 == 0, (to, w.shape, n_heads)
    if to == "half":
        return w.reshape(n_heads, e // 2, 2, d).transpose(1, 2).reshape(rows, d)  # (H, 2, E/2, D) → (H*E, D)
    return w.reshape(n_heads, 2, e // 2, d).transpose(1, 2).reshape(rows, d)  # (H, E/2, 2, D) → (H*E, D)
