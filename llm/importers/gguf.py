"""Import a llama-architecture GGUF file (llama.cpp's format) into a checkpoint directory.

Weights are read with the `gguf` package and dequantized to float32 (Q4_0, Q4_1, Q8_0, F16,
F32, BF16). The tokenizer and chat template come from the file's metadata. llama.cpp's
converter permutes Q/K rows so that RoPE rotates interleaved pairs, so the imported config
uses `rope_style: interleaved` and the weights are kept as stored.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from llm.checkpoint import make_meta, save_checkpoint
from llm.config import ModelConfig
from llm.errors import UnsupportedModel
from llm.importers.bytelevel import GPT2_PATTERN, LLAMA_BPE_DIGITS_PATTERN, tokenizer_from_bytelevel

__all__ = ["import_gguf", "read_gguf", "config_from_gguf", "tokenizer_from_gguf"]

SUPPORTED_TYPES = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"}
# GGUF pre-tokenizer names → split regex.
PRE_TOKENIZERS = {
    "smollm": LLAMA_BPE_DIGITS_PATTERN,
    "starcoder": LLAMA_BPE_DIGITS_PATTERN,
    "refact": LLAMA_BPE_DIGITS_PATTERN,
    "gpt-2": GPT2_PATTERN,
    "gpt2": GPT2_PATTERN,
}
LAYER_NAMES = {
    "attn_norm.weight": "attn_norm.weight",
    "attn_q.weight": "attn.wq.weight",
    "attn_k.weight": "attn.wk.weight",
    "attn_v.weight": "attn.wv.weight",
    "attn_output.weight": "attn.wo.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "ffn.w_gate.weight",
    "ffn_up.weight": "ffn.w_up.weight",
    "ffn_down.weight": "ffn.w_down.weight",
}


def _field(reader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def _default_system(template: str | None) -> str | None:
    """The system prompt a ChatML Jinja template inserts when the conversation has none."""
    if not template:
        return None
    m = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", template, re.S)
    return m.group(1) if m else None


def read_gguf(path: str | Path):
    """Open a GGUF file, translating read errors into one-line UnsupportedModel errors."""
    import gguf

    path = Path(path)
    if not path.exists():
        raise UnsupportedModel(f"{path}: no such GGUF file")
    try:
        return gguf.GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise UnsupportedModel(f"{path}: not a readable GGUF file ({exc})") from exc


def config_from_gguf(reader, path: Path) -> ModelConfig:
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise UnsupportedModel(f"{path}: architecture {arch!r} is not supported (only 'llama')")
    tokens = _field(reader, "tokenizer.ggml.tokens") or []
    names = {t.name for t in reader.tensors}
    p = "llama."
    d_model = int(_field(reader, p + "embedding_length"))
    n_heads = int(_field(reader, p + "attention.head_count"))
    return ModelConfig(
        name=str(_field(reader, "general.name", path.stem)),
        vocab_size=int(_field(reader, p + "vocab_size", len(tokens))),
        d_model=d_model,
        n_layers=int(_field(reader, p + "block_count")),
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, p + "attention.head_count_kv", n_heads)),
        ffn_hidden=int(_field(reader, p + "feed_forward_length")),
        norm_eps=float(_field(reader, p + "attention.layer_norm_rms_epsilon", 1e-5)),
        rope_base=float(_field(reader, p + "rope.freq_base", 10000.0)),
        rope_style="interleaved",
        tie_embeddings="output.weight" not in names,
        max_seq_len=int(_field(reader, p + "context_length", 2048)),
        tokenizer=str(_field(reader, "tokenizer.ggml.pre", "gpt2")),
        chat_template="chatml",
        default_system=_default_system(_field(reader, "tokenizer.chat_template")),
    )


def tokenizer_from_gguf(reader, path: Path):
    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise UnsupportedModel(f"{path}: tokenizer model {model!r} is not supported (only byte-level BPE 'gpt2')")
    pre = _field(reader, "tokenizer.ggml.pre", "gpt2")
    if pre not in PRE_TOKENIZERS:
        raise UnsupportedModel(
            f"{path}: pre-tokenizer {pre!r} is not supported; known: {', '.join(sorted(PRE_TOKENIZERS))}"
        )
    tokens = list(_field(reader, "tokenizer.ggml.tokens"))
    types = list(_field(reader, "tokenizer.ggml.token_type", [1] * len(tokens)))
    merges = list(_field(reader, "tokenizer.ggml.merges", []) or [])
    special = {i for i, t in enumerate(types) if t in (3, 4)}  # CONTROL, USER_DEFINED
    return tokenizer_from_bytelevel(tokens, special, merges, PRE_TOKENIZERS[pre], name=str(pre), source=str(path))


def _tensors_from_gguf(reader, cfg: ModelConfig, path: Path) -> dict[str, torch.Tensor]:
    from gguf.quants import dequantize

    state: dict[str, torch.Tensor] = {}
    for t in reader.tensors:
        qtype = t.tensor_type.name
        if qtype not in SUPPORTED_TYPES:
            raise UnsupportedModel(
                f"{path}: tensor {t.name} has type {qtype}; supported: {', '.join(sorted(SUPPORTED_TYPES))}"
            )
        if t.name == "token_embd.weight":
            name = "tok_emb.weight"
        elif t.name == "output_norm.weight":
            name = "norm.weight"
        elif t.name == "output.weight":
            name = "lm_head.weight"
        elif t.name.startswith("blk."):
            _, layer, rest = t.name.split(".", 2)
            if rest not in LAYER_NAMES:
                raise UnsupportedModel(f"{path}: unexpected tensor {t.name}")
            name = f"blocks.{layer}.{LAYER_NAMES[rest]}"
        elif t.name == "rope_freqs.weight":
            raise UnsupportedModel(f"{path}: RoPE frequency scaling (rope_freqs) is not supported")
        else:
            raise UnsupportedModel(f"{path}: unexpected tensor {t.name}")
        arr = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        state[name] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))  # copy: GGUF data is a read-only mmap
    return state


def import_gguf(path: str | Path, out: str | Path) -> Path:
    """Convert a GGUF file into a float32 checkpoint directory at `out`."""
    path = Path(path)
    reader = read_gguf(path)
    cfg = config_from_gguf(reader, path)
    tok = tokenizer_from_gguf(reader, path)
    state = _tensors_from_gguf(reader, cfg, path)
    qtypes = sorted({t.tensor_type.name for t in reader.tensors})
    meta = make_meta("import", source=str(path), source_format="gguf", source_tensor_types=qtypes)
    return save_checkpoint(out, state, cfg, tok, meta)
