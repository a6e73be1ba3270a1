"""`llm export hf`: a checkpoint as a Hugging Face `LlamaForCausalLM` folder.

The folder holds config.json, model.safetensors (HF tensor names), generation_config.json,
tokenizer.json and tokenizer_config.json (with the ChatML chat template), so transformers,
and the tools built on its format, load the model with no code of ours.

HF's Llama rotates the halves of each head (rotate-half RoPE). A checkpoint with
`rope_style: interleaved` (the imported SmolLM2: llama.cpp's converter permuted Q/K) gets
its Q/K rows permuted into that layout, an exact reordering, so HF's logits equal ours.
Tensors are written in the checkpoint's dtype (`torch_dtype`). The folder is written beside `out` and renamed
into place, so `out` is either absent, the old folder or the complete new one.

Knows checkpoints and the HF file layout; knows nothing about training or sampling.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from llm.atomic import atomic_directory
from llm.checkpoint import ADAPTER_FILE, load_checkpoint, load_config, load_meta
from llm.config import ModelConfig
from llm.errors import CheckpointError, ConfigError
from llm.export.hf_layout import EXPORT_BLOCK, hf_name, permute_rope_rows
from llm.export.hf_tokenizer import hf_tokenizer_config, hf_tokenizer_json, special_ids
from llm.hub import resolve_model
from llm.model import GPT
from llm.tokenizer import Tokenizer

__all__ = ["export_hf", "hf_config"]


def hf_config(config: ModelConfig, tok: Tokenizer) -> dict[str, Any]:
    """config.json for LlamaForCausalLM, in the flat form older and newer readers all accept."""
    ids = special_ids(tok, config)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.ffn_hidden,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_base,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": ids["bos"],
        "eos_token_id": ids["eos"],
        "torch_dtype": config.dtype,
        "use_cache": True,
        EXPORT_BLOCK: {
            "name": config.name,
            "tokenizer": config.tokenizer,
            "dtype": config.dtype,
            "rope_style": config.rope_style,
        },
    }


def _hf_state(model: GPT, config: ModelConfig) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in model.state_dict().items():
        name = hf_name(key)
        assert name is not None, f"no Hugging Face name for {key}"
        if config.rope_style == "interleaved" and key.endswith(("attn.wq.weight", "attn.wk.weight")):
            heads = config.n_heads if key.endswith("wq.weight") else config.kv_heads
            t = permute_rope_rows(t, heads, to="half")
        out[name] = t.detach().contiguous()
    if config.tie_embeddings:
        out.pop("lm_head.weight", None)  # HF ties it to the embedding (tie_word_embeddings)
    return out


def _check_exportable(path: Path, config: ModelConfig) -> None:
    quant = load_meta(path).get("quantization")
    if quant:
        kind = f"int{quant['bits']}" if isinstance(quant, dict) and "bits" in quant else "quantized"
        raise CheckpointError(f"{path} is a quantized checkpoint ({kind}); export the float checkpoint it was made from")
    if config.moe is not None:
        raise CheckpointError(f"{path} is a Mixture-of-Experts model; LlamaForCausalLM has no experts, so it cannot be exported")
    if config.adapter is not None or (path / ADAPTER_FILE).exists():
        raise CheckpointError(
            f"{path} holds an unmerged LoRA adapter; run `llm lora merge {path} --out DIR` first and export DIR"
        )


def _check_out(out: Path, source: Path, force: bool) -> None:
    if out.resolve() == source.resolve():
        raise ConfigError(f"--out {out} is the checkpoint being exported; give another folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory path")
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} already exists and is not empty; pass --force to replace it")


def export_hf(model: str | Path, out: str | Path, force: bool = False) -> Path:
    """Write checkpoint `model` (path or pulled name) as a transformers LlamaForCausalLM folder at `out`."""
    path = resolve_model(model)
    out = Path(out)
    _check_exportable(path, load_config(path))
    _check_out(out, path, force)
    ck = load_checkpoint(path)  # validates tensors against config.json and the tokenizer
    config, tok = ck.config, ck.tokenizer
    state = _hf_state(ck.model, config)
    ids = special_ids(tok, config)
    generation = {"bos_token_id": ids["bos"], "eos_token_id": ids["stops"] or ids["eos"]}
    files = {
        "config.json": hf_config(config, tok),
        "generation_config.json": generation,
        "tokenizer.json": hf_tokenizer_json(tok),
        "tokenizer_config.json": hf_tokenizer_config(tok, config),
    }
    _write_atomically(out, state, files)
    return out


def _write_atomically(out: Path, state: dict[str, torch.Tensor], files: dict[str, dict]) -> None:
    with atomic_directory(out) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name, doc in files.items():
            (tmp / name).write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        # safetensors creates its file 0600; give it the mode the umask gave the others, so a
        # server running as another user can read the folder.
        os.chmod(tmp / "model.safetensors", (tmp / "config.json").stat().st_mode)
