"""Import a GGUF file keeping its 4/8-bit weights as they are: same bits, our kernels.

`llm.importers.gguf` dequantizes every tensor to float32. This module reads the raw
blocks instead and maps them onto the packed formats of `llm.infer.linear_weight`, whose
group-32 layouts were chosen to be GGUF's:

    Q4_1 block (20 bytes): d fp16, m fp16, 16 bytes of nibbles   -> Int4Weight(scale=d, min=m)
    Q4_0 block (18 bytes): d fp16, 16 bytes of nibbles (q - 8)   -> Int4Weight(scale=d, min=-8d)
    Q8_0 block (34 bytes): d fp16, 32 int8                       -> Int8Weight(scale=d), group 32

Other tensor types are dequantized to float32 (norm weights are F32 anyway). The config
and tokenizer come from the file's metadata exactly as in the float importer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from llm.checkpoint import make_meta, save_checkpoint
from llm.errors import UnsupportedModel
from llm.importers.gguf import LAYER_NAMES, config_from_gguf, tokenizer_from_gguf, read_gguf
from llm.infer.linear_weight import Int4Weight, Int8Weight

__all__ = ["import_gguf_quantized"]

_BLOCK = 32


def _our_name(gguf_name: str, path: Path) -> str:
    fixed = {"token_embd.weight": "tok_emb", "output_norm.weight": "norm", "output.weight": "lm_head"}
    if gguf_name in fixed:
        return fixed[gguf_name]
    if gguf_name.startswith("blk."):
        _, layer, rest = gguf_name.split(".", 2)
        if rest in LAYER_NAMES:
            return f"blocks.{layer}.{LAYER_NAMES[rest].removesuffix('.weight')}"
    raise UnsupportedModel(f"{path}: unexpected tensor {gguf_name}")


def _blocks(data: np.ndarray, rows: int, block_bytes: int) -> np.ndarray:
    """Raw tensor bytes as (rows, blocks per row, block_bytes)."""
    return np.ascontiguousarray(data).reshape(rows, -1, block_bytes)


def _fp16(blocks: np.ndarray, offset: int) -> torch.Tensor:
    """The float16 field at byte `offset` of every block: (rows, blocks)."""
    raw = np.ascontiguousarray(blocks[:, :, offset : offset + 2]).view(np.float16)[..., 0]
    return torch.from_numpy(raw.copy())


def _packed(blocks: np.ndarray, offset: int) -> torch.Tensor:
    """The 16 nibble bytes of every block, rows concatenated: (rows, K/2) uint8."""
    raw = np.ascontiguousarray(blocks[:, :, offset : offset + 16]).reshape(blocks.shape[0], -1)
    return torch.from_numpy(raw.copy())


def import_gguf_quantized(path: str | Path, out: str | Path) -> Path:
    """Convert a GGUF file into a quantized checkpoint directory at `out` without requantizing."""
    from gguf.quants import dequantize

    path = Path(path)
    reader = read_gguf(path)
    cfg = config_from_gguf(reader, path)
    tok = tokenizer_from_gguf(reader, path)
    state: dict[str, torch.Tensor] = {}
    kinds: dict[str, int] = {}
    for t in reader.tensors:
        name, qtype = _our_name(t.name, path), t.tensor_type.name
        if t.name == "rope_freqs.weight":
            raise UnsupportedModel(f"{path}: RoPE frequency scaling (rope_freqs) is not supported")
        rows = int(t.shape[-1]) if len(t.shape) > 1 else 1
        if qtype == "Q8_0":
            b = _blocks(t.data, rows, 2 + _BLOCK)
            q = torch.from_numpy(np.ascontiguousarray(b[:, :, 2:]).view(np.int8).reshape(rows, -1).copy())
            state.update(Int8Weight(q, _fp16(b, 0)).state(name))
        elif qtype == "Q4_1":
            b = _blocks(t.data, rows, 4 + _BLOCK // 2)
            state.update(Int4Weight(_packed(b, 4), _fp16(b, 0), _fp16(b, 2)).state(name))
        elif qtype == "Q4_0":
            b = _blocks(t.data, rows, 2 + _BLOCK // 2)
            d = _fp16(b, 0)
            state.update(Int4Weight(_packed(b, 2), d, (-8 * d.float()).to(torch.float16)).state(name))
        else:
            try:
                arr = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            except NotImplementedError as exc:
                raise UnsupportedModel(f"{path}: tensor {t.name} has type {qtype}, which cannot be read") from exc
            state[f"{name}.weight"] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))
        kinds[qtype] = kinds.get(qtype, 0) + 1
    meta = make_meta(
        "import",
        source=str(path),
        source_format="gguf",
        source_tensor_types=sorted(kinds),
        quantization={"from": "gguf", "tensor_types": kinds},
    )
    return save_checkpoint(out, state, cfg, tok, meta)
