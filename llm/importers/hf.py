"""Import a local Hugging Face llama-family folder (config.json + *.safetensors + tokenizer.json).

HF stores Q/K for "rotate-half" RoPE, so the imported config uses `rope_style: half`.
Only byte-level BPE tokenizers (GPT-2 style) are supported.

A folder written by `llm export hf` carries an `llm_export` block in config.json with the
checkpoint fields HF has no key for (`name`, `tokenizer`, `dtype`, `rope_style`); when it
says `rope_style: interleaved`, Q/K rows are permuted back, so export → import gives back
the very tensors that were exported. Tensor names and the permutation come from
`llm.export.hf_layout`, shared with the exporter.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file

from llm.checkpoint import make_meta, save_checkpoint
from llm.config import ModelConfig, format_validation_error
from llm.errors import UnsupportedModel
from llm.export.hf_chat_template import DEFAULT_SYSTEM_SET
from llm.export.hf_layout import EXPORT_BLOCK, EXPORT_FIELDS, LAYER_NAMES, TOP_NAMES, permute_rope_rows
from llm.importers.bytelevel import GPT2_PATTERN, LLAMA_BPE_DIGITS_PATTERN, tokenizer_from_bytelevel
from llm.importers.gguf import _default_system

__all__ = ["import_hf"]


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise UnsupportedModel(f"{path}: missing (a Hugging Face llama folder needs config.json, tokenizer.json, *.safetensors)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UnsupportedModel(f"{path}: corrupt JSON ({exc.msg})") from exc


def _default_system_of(template: str | None) -> str | None:
    """The default system prompt: exactly as `llm export hf` stored it, else guessed from a ChatML template."""
    m = DEFAULT_SYSTEM_SET.search(template or "")
    if m is None:
        return _default_system(template)
    try:
        value = json.loads("null" if m.group(1) == "none" else m.group(1))
    except json.JSONDecodeError:
        return _default_system(template)
    return value if isinstance(value, str) else None


def _token_text(value: object) -> str | None:
    """A special token in tokenizer_config.json: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _config(hf: dict, tok_cfg: dict, path: Path) -> ModelConfig:
    if hf.get("model_type") != "llama":
        raise UnsupportedModel(f"{path}/config.json: model_type {hf.get('model_type')!r} is not supported (only 'llama')")
    # Older configs say rope_theta/rope_scaling; newer ones nest them in rope_parameters.
    rope = hf.get("rope_parameters") or {}
    if hf.get("rope_scaling") or rope.get("rope_type", "default") != "default":
        raise UnsupportedModel(f"{path}/config.json: RoPE scaling is not supported")
    rope_base = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    n_heads = int(hf["num_attention_heads"])
    if int(hf.get("head_dim") or 0) not in (0, int(hf["hidden_size"]) // n_heads):
        raise UnsupportedModel(f"{path}/config.json: head_dim other than hidden_size / num_attention_heads is not supported")
    fields = dict(
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
        default_system=_default_system_of(tok_cfg.get("chat_template")),
    )
    eos = _token_text(tok_cfg.get("eos_token"))
    if eos:
        fields["eos_token"] = eos
    block = hf.get(EXPORT_BLOCK) or {}
    if not isinstance(block, dict):
        raise UnsupportedModel(f"{path}/config.json: {EXPORT_BLOCK} must be an object")
    fields.update({k: block[k] for k in EXPORT_FIELDS if k in block})
    try:
        return ModelConfig(**fields)
    except ValidationError as exc:
        raise UnsupportedModel(format_validation_error(exc, f"{path}/config.json")) from exc


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


def _tokenizer(path: Path, name: str):
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
    return tokenizer_from_bytelevel(tokens, special, merges, _pattern(data.get("pre_tokenizer")), name, str(f))


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
            if name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and cfg.tie_embeddings):
                continue
            if name in TOP_NAMES:
                key = TOP_NAMES[name]
            elif name.startswith("model.layers.") and name.split(".", 3)[-1] in LAYER_NAMES:
                _, _, layer, rest = name.split(".", 3)
                key = f"blocks.{layer}.{LAYER_NAMES[rest]}"
            else:
                raise UnsupportedModel(f"{f}: unexpected tensor {name}")
            state[key] = t.float()
    if cfg.rope_style == "interleaved":  # exported from an interleaved checkpoint: undo the export's permutation
        for key in state:
            if key.endswith(("attn.wq.weight", "attn.wk.weight")):
                heads = cfg.n_heads if key.endswith("wq.weight") else cfg.kv_heads
                state[key] = permute_rope_rows(state[key], heads, to="interleaved")
    return state


def import_hf(path: str | Path, out: str | Path) -> Path:
    """Convert a local Hugging Face llama folder into a float32 checkpoint directory at `out`."""
    path = Path(path)
    if not path.is_dir():
        raise UnsupportedModel(f"{path}: not a directory (expected a Hugging Face model folder)")
    tok_cfg_path = path / "tokenizer_config.json"
    tok_cfg = _read_json(tok_cfg_path) if tok_cfg_path.exists() else {}
    cfg = _config(_read_json(path / "config.json"), tok_cfg, path)
    tok = _tokenizer(path, cfg.tokenizer)
    state = _weights(path, cfg)
    meta = make_meta("import", source=str(path), source_format="hf")
    return save_checkpoint(out, state, cfg, tok, meta)
