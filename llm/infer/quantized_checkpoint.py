"""Quantized checkpoint directories: write them (`llm quantize`) and load them back into a GPT.

A quantized checkpoint is an ordinary checkpoint directory (`llm.checkpoint`) whose
`model.safetensors` holds packed tensors under the names of `llm.infer.linear_weight`
(`blocks.0.attn.wq.weight_q4`, `...weight_scale`, `...weight_min`) and whose meta.json says
`"quantization": {...}`. Loading builds the GPT with `QuantizedLinear` / `QuantizedEmbedding`
modules wherever the file has packed tensors, so the float model code runs it unchanged and
`InferenceModel.from_gpt` picks the packed weights up for the fast kernels.

Knows the directory format (through `llm.checkpoint`) and the module swap; nothing about
sampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open

from llm.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_config,
    load_meta,
    load_state_dict,
    make_meta,
    save_checkpoint,
)
from llm.config import ModelConfig
from llm.errors import CheckpointError
from llm.infer.linear_weight import QUANT_SUFFIXES, FloatWeight, weight_from_state
from llm.infer.quantize import QuantConfig, QuantizedEmbedding, QuantizedLinear, quantize_model
from llm.model import GPT, precompute_rope
from llm.tokenizer import Tokenizer

__all__ = ["save_quantized", "load_quantized", "is_quantized_state", "is_quantized_checkpoint", "quantize_checkpoint"]


def is_quantized_state(state: dict[str, torch.Tensor]) -> bool:
    return any(k.endswith(QUANT_SUFFIXES) for k in state)


def save_quantized(
    path: str | Path, model: GPT, config: ModelConfig, tokenizer: Tokenizer, meta: dict[str, Any]
) -> Path:
    """Write a GPT with quantized modules as a checkpoint directory (atomically)."""
    state = model.state_dict()
    if config.tie_embeddings:
        # The head shares the embedding's tensors; safetensors refuses aliases and the loader re-ties them.
        state = {k: v for k, v in state.items() if not k.startswith("lm_head.")}
    return save_checkpoint(path, state, config, tokenizer, meta)


def _materialize(model: nn.Module) -> None:
    """Give every parameter still on the meta device real (uninitialised) CPU storage."""
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if p.is_meta:
                module._parameters[name] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype), requires_grad=False)


def load_quantized(path: str | Path, state: dict[str, torch.Tensor] | None = None) -> Checkpoint:
    """Load a quantized checkpoint directory into a GPT with quantized modules (eval mode, CPU)."""
    path = Path(path)
    config = load_config(path)
    state = dict(state if state is not None else load_state_dict(path))
    tokenizer = Tokenizer.load(path)
    meta = load_meta(path)
    with torch.device("meta"):
        model = GPT(config)
    used: set[str] = set()
    for name, module in list(model.named_modules()):
        if not isinstance(module, (nn.Linear, nn.Embedding)) or (name == "lm_head" and config.tie_embeddings):
            continue
        weight = weight_from_state(name, state)
        if weight is None or isinstance(weight, FloatWeight):
            continue
        used.update(k for k in state if k.startswith(name + ".weight_"))
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, QuantizedEmbedding(weight) if isinstance(module, nn.Embedding) else QuantizedLinear(weight))
    if config.tie_embeddings:
        model.lm_head = QuantizedLinear(model.tok_emb.linear_weight()) if isinstance(model.tok_emb, QuantizedEmbedding) else model.lm_head
    _materialize(model)
    rest = {k: v for k, v in state.items() if k not in used}
    expected = {k for k, _ in model.named_parameters() if not (config.tie_embeddings and k == "lm_head.weight")}
    missing, unexpected = sorted(expected - set(rest)), sorted(set(rest) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}/model.safetensors does not match config.json: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    try:
        model.load_state_dict(rest, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}/model.safetensors: {str(exc).splitlines()[0]}") from exc
    if config.tie_embeddings and not isinstance(model.tok_emb, QuantizedEmbedding):
        model.lm_head.weight = model.tok_emb.weight
    cos, sin = precompute_rope(config.head_dim, config.max_seq_len, config.rope_base)
    model.rope_cos, model.rope_sin = cos, sin
    model.eval()
    return Checkpoint(model=model, config=config, tokenizer=tokenizer, meta=meta, path=path)


def is_quantized_checkpoint(path: str | Path) -> bool:
    """Whether a checkpoint directory holds packed weights (reads tensor names only)."""
    f = Path(path) / "model.safetensors"
    try:
        with safe_open(str(f), framework="pt") as st:
            return is_quantized_state(dict.fromkeys(st.keys()))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{f}: corrupt or unreadable safetensors file ({exc})") from exc


def quantize_checkpoint(src: str | Path, out: str | Path, config: QuantConfig) -> Path:
    """Quantize a float checkpoint directory into a new quantized one at `out`."""
    src = Path(src)
    load_config(src)  # a clear error for a missing or incomplete directory
    if is_quantized_checkpoint(src):
        raise CheckpointError(f"{src} is already quantized; quantize its float parent instead")
    ck = load_checkpoint(src)
    quantize_model(ck.model, config)
    meta = make_meta(
        "quantize",
        parent=str(src),
        quantization={"bits": config.bits, "group_size": config.effective_group_size, "embeddings": config.embeddings},
    )
    return save_quantized(out, ck.model, ck.config, ck.tokenizer, meta)
