"""Checkpoint directories: config.json + model.safetensors + tokenizer.json + meta.json.

A checkpoint is written into a hidden temp directory beside its destination and renamed
into place (`llm.atomic.atomic_directory`), so a reader never sees a half-written one.
Replacing an existing checkpoint moves the old one aside (`.NAME.old`) for the instant
between two renames; if a process dies right there, the next load puts the old one back.

This module knows the directory format and nothing about training or sampling.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llm.atomic import atomic_directory, recover
from llm.config import ModelConfig, format_validation_error
from llm.errors import CheckpointError, TokenizerError
from llm.lora import adapter_state, base_state, merge_adapter_into_state
from llm.model import GPT, precompute_rope

if TYPE_CHECKING:
    from llm.tokenizer import Tokenizer

__all__ = [
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_config",
    "load_state_dict",
    "load_merged_state_dict",
    "ADAPTER_FILE",
    "make_meta",
    "is_checkpoint",
    "REQUIRED_FILES",
]

REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "meta.json")
ADAPTER_FILE = "adapter.safetensors"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Checkpoint:
    model: GPT
    config: ModelConfig
    tokenizer: "Tokenizer"
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def make_meta(stage: str, **fields: Any) -> dict[str, Any]:
    """Provenance for meta.json: stage (pretrain|sft|dpo|import|quantize) plus any fields."""
    meta = {
        "stage": stage,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": _git_sha(),
    }
    meta.update(fields)
    return meta


def save_checkpoint(
    path: str | Path,
    model: GPT | dict[str, torch.Tensor],
    config: ModelConfig,
    tokenizer: "Tokenizer",
    meta: dict[str, Any],
    extra_files: dict[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Write a checkpoint directory atomically and return its path.

    `model` is a GPT or a state dict (e.g. a quantized one). `extra_files` maps a file name to
    a writer called with the temp directory (used for train_state.pt). LoRA tensors
    (`*.lora_A`, `*.lora_B`) go to adapter.safetensors; `config.adapter` must describe them.
    """
    path = Path(path)
    with atomic_directory(path) as tmp:
        state = model.state_dict() if isinstance(model, torch.nn.Module) else dict(model)
        if config.tie_embeddings:
            state.pop("lm_head.weight", None)  # shared with tok_emb.weight; safetensors refuses aliases
        state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        adapter = adapter_state(state)
        if adapter:
            assert config.adapter is not None, "LoRA tensors need config.adapter"
            save_file(adapter, str(tmp / ADAPTER_FILE))
        save_file(base_state(state), str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(config.model_dump_json(indent=2))
        tokenizer.save(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        for name, writer in (extra_files or {}).items():
            writer(tmp / name)
    return path


def is_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    recover(path)
    return path.is_dir() and all((path / f).exists() for f in REQUIRED_FILES)


def _check_dir(path: Path) -> None:
    recover(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory (expected a folder with {', '.join(REQUIRED_FILES)})")
    missing = [f for f in REQUIRED_FILES if not (path / f).exists()]
    if missing:
        raise CheckpointError(
            f"{path}: incomplete checkpoint, missing {', '.join(missing)} (was it written by an interrupted save?)"
        )


def load_config(path: str | Path) -> ModelConfig:
    path = Path(path)
    _check_dir(path)
    f = path / "config.json"
    try:
        return ModelConfig(**json.loads(f.read_text()))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{f}: corrupt JSON ({exc.msg} at line {exc.lineno})") from exc
    except ValidationError as exc:
        raise CheckpointError(format_validation_error(exc, str(f))) from exc


def _load_tensors(f: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{f}: corrupt or unreadable safetensors file ({exc})") from exc


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The saved tensors as they are: base weights plus, for a LoRA checkpoint, the unmerged adapter."""
    path = Path(path)
    state = _load_tensors(path / "model.safetensors")
    if (path / ADAPTER_FILE).exists():
        state.update(_load_tensors(path / ADAPTER_FILE))
    return state


def load_merged_state_dict(path: str | Path, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Plain weights: the adapter (if the checkpoint has one) folded into the base weights."""
    state = load_state_dict(path)
    if config.adapter is None:
        return state
    adapter = adapter_state(state)
    if not adapter:
        raise CheckpointError(f"{path}: config.json names a LoRA adapter but {ADAPTER_FILE} is missing or empty")
    return merge_adapter_into_state(base_state(state), adapter, config.adapter)


def load_meta(path: Path) -> dict[str, Any]:
    f = path / "meta.json"
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{f}: corrupt JSON ({exc.msg})") from exc


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", dtype: str | None = None
) -> Checkpoint:
    """Load and validate a checkpoint directory into a ready-to-run model (eval mode)."""
    from llm.tokenizer import Tokenizer

    path = Path(path)
    config = load_config(path)
    state = load_merged_state_dict(path, config)
    config = config.model_copy(update={"adapter": None})  # the returned model is plain: the adapter is merged
    meta = load_meta(path)
    if meta.get("quantization"):
        # Quantized modules live in llm.infer, which builds on this module, not the other way round.
        raise CheckpointError(
            f"{path} is a quantized checkpoint ({meta['quantization']}); load it with llm.infer.loading.load_model "
            "(what llm generate / llm serve use)"
        )
    try:
        tokenizer = Tokenizer.load(path)
    except TokenizerError as exc:
        raise CheckpointError(str(exc)) from exc
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{path}: tokenizer has {tokenizer.vocab_size} tokens but config.vocab_size is {config.vocab_size}"
        )
    with torch.device("meta"):
        model = GPT(config)
    if config.tie_embeddings:
        state.pop("lm_head.weight", None)
    expected = {k: v for k, v in model.state_dict().items() if not (config.tie_embeddings and k == "lm_head.weight")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}/model.safetensors does not match config.json: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(
                f"{path}/model.safetensors: tensor {k} has shape {tuple(v.shape)}, config.json implies {tuple(expected[k].shape)}"
            )
    torch_dtype = DTYPES[dtype or config.dtype]
    model = model.to_empty(device=device)
    model.load_state_dict(state, strict=False, assign=False)
    if config.tie_embeddings:
        model.lm_head.weight = model.tok_emb.weight
    model = model.to(torch_dtype)
    # RoPE tables are non-persistent buffers left uninitialised on `meta`; rebuild them in float32.
    cos, sin = precompute_rope(config.head_dim, config.max_seq_len, config.rope_base)
    model.rope_cos, model.rope_sin = cos.to(device), sin.to(device)
    model.eval()
    return Checkpoint(model=model, config=config, tokenizer=tokenizer, meta=meta, path=path)

