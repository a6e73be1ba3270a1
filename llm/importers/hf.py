"""Import a local Hugging Face llama-family folder (config.json + *.safetensors + tokenizer.json).

HF stores Q/K for "rotate-half" RoPE, so the imported config uses `rope_style: half`.
Only byte-level BPE tokenizers (GPT-2 style) are supported.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from llm.checkpoint import make_meta, save_checkpoint
from llm.config import ModelConfig
from llm.errors import UnsupportedModel
from llm.importers.bytelevel import GPT2_PATTERN, LLAMA_BPE_DIGITS_PATTERN, tokenizer_from_bytelevel
from llm.importers.gguf import _default_system

__all__ = ["import_hf"]

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


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise UnsupportedModel(f"{path}: missing (a Hugging Face llama folder needs config.json, tokenizer.json, *.safetensors)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UnsupportedModel(f"{path}: corrupt JSON ({exc.msg})") from exc


def _config(hf: dict, tok_cfg: dict, path: Path) -> ModelConfig:
    if hf.get("model_type") != "llama":
        raise UnsupportedModel(f"{path}/config.json: model_type {hf.get('model_type')!r} is not supported (only 'llama')")
    # Older configs say rope_theta/rope_scaling; newer ones nest them in rope_parameters.
    rope = hf.get("rope_parameters") or {}
    if hf.get("rope_scaling") or rope.get("rope_type", "default") != "default":
        raise UnsupportedModel(f"{path}/config.json: RoPE scaling is not supported")
    rope_base = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    n_heads = int(hf["num_attention_heads"])
    return ModelConfig(
        name=path.name,
        vocab_size=int(hf["vocab_size"]),
        d_model=int(hf["hidden_size"]),
        n_layers=int(hf["num_hidden_layers"]),
        n_heads=n_heads,
        n_kv_heads=int(hf.get("num_key_value_heads") or n_heads),
        ffn_hidden=int(hf["intermediate_size"]),
        norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
        rope_base=float(rope_base),
        rope_style="half",
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        max_seq_len=int(hf.get("max_position_embeddings", 2048)),
        tokenizer="hf-bytelevel",
        chat_template="chatml",
        default_system=_default_system(tok_cfg.get("chat_template")),
    )


def _pattern(pre: dict | None) -> str:
    """Map tokenizer.json's pre_tokenizer to a split regex (Digits(individual) + ByteLevel, or ByteLevel)."""
    if not pre:
        return GPT2_PATTERN
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    for p in parts:
        if p.get("type") == "Split":
            regex = (p.get("pattern") or {}).get("Regex")
            if regex:
                return regex
    if any(p.get("type") == "Digits" and p.get("individual_digits") for p in parts):
        return LLAMA_BPE_DIGITS_PATTERN
    return GPT2_PATTERN


def _tokenizer(path: Path):
    f = path / "tokenizer.json"
    data = _read_json(f)
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise UnsupportedModel(f"{f}: tokenizer type {model.get('type')!r} is not supported (only byte-level BPE)")
    vocab: dict[str, int] = dict(model["vocab"])
    special = set()
    for t in data.get("added_tokens", []):
        vocab[t["content"]] = t["id"]
        if t.get("special"):
            special.add(t["id"])
    tokens = [""] * (max(vocab.values()) + 1)
    for s, i in vocab.items():
        tokens[i] = s
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokenizer_from_bytelevel(tokens, special, merges, _pattern(data.get("pre_tokenizer")), "hf-bytelevel", str(f))


def _weights(path: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise UnsupportedModel(f"{path}: no *.safetensors weights found")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            tensors = load_file(str(f))
        except (SafetensorError, OSError) as exc:
            raise UnsupportedModel(f"{f}: unreadable safetensors ({exc})") from exc
        for name, t in tensors.items():
            if name == "model.embed_tokens.weight":
                key = "tok_emb.weight"
            elif name == "model.norm.weight":
                key = "norm.weight"
            elif name == "lm_head.weight":
                if cfg.tie_embeddings:
                    continue
                key = "lm_head.weight"
            elif name.startswith("model.layers."):
                _, _, layer, rest = name.split(".", 3)
                if rest not in LAYER_NAMES:
                    raise UnsupportedModel(f"{f}: unexpected tensor {name}")
                key = f"blocks.{layer}.{LAYER_NAMES[rest]}"
            elif name.endswith("rotary_emb.inv_freq"):
                continue
            else:
                raise UnsupportedModel(f"{f}: unexpected tensor {name}")
            state[key] = t.float()
    return state


def import_hf(path: str | Path, out: str | Path) -> Path:
    """Convert a local Hugging Face llama folder into a float32 checkpoint directory at `out`."""
    path = Path(path)
    if not path.is_dir():
        raise UnsupportedModel(f"{path}: not a directory (expected a Hugging Face model folder)")
    tok_cfg_path = path / "tokenizer_config.json"
    tok_cfg = _read_json(tok_cfg_path) if tok_cfg_path.exists() else {}
    cfg = _config(_read_json(path / "config.json"), tok_cfg, path)
    tok = _tokenizer(path)
    state = _weights(path, cfg)
    meta = make_meta("import", source=str(path), source_format="hf")
    return save_checkpoint(out, state, cfg, tok, meta)
