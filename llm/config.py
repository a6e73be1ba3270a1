"""Model configuration: one pydantic model, YAML presets, dotted overrides.

This module knows shapes and hyper-parameters only; it knows nothing about weights,
tokenizers or training. Presets live in `llm/presets/<name>.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from llm.errors import ConfigError, did_you_mean

__all__ = ["ModelConfig", "AdapterConfig", "LORA_TARGETS", "load_preset", "preset_path", "list_presets", "apply_overrides", "parse_value", "format_validation_error"]

PRESET_DIR = Path(__file__).parent / "presets"


# LoRA target short names -> the Linear modules they adapt in every block.
LORA_TARGETS = {
    "q": "attn.wq",
    "k": "attn.wk",
    "v": "attn.wv",
    "o": "attn.wo",
    "gate": "ffn.w_gate",
    "up": "ffn.w_up",
    "down": "ffn.w_down",
}


class AdapterConfig(BaseModel):
    """A LoRA adapter stored beside the base weights (`adapter.safetensors`).

    LoRA (Hu et al. 2021, §4.1): W' = W + (alpha / rank) * B @ A with A (rank, in) and
    B (out, rank); B starts at zero so training starts from the base model exactly.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["lora"] = "lora"
    rank: int
    alpha: float
    targets: list[str]
    base: str | None = None  # the checkpoint the adapter was trained on (provenance)

    @model_validator(mode="after")
    def _check(self) -> "AdapterConfig":
        if self.rank < 1:
            raise ValueError(f"adapter rank must be >= 1, got {self.rank}")
        unknown = [t for t in self.targets if t not in LORA_TARGETS]
        if unknown or not self.targets:
            raise ValueError(f"adapter targets {unknown or '[]'} invalid; choose from {', '.join(LORA_TARGETS)}")
        return self

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class ModelConfig(BaseModel):
    """A Llama-style decoder: RMSNorm, RoPE, SwiGLU feed-forward, grouped-query attention."""

    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None  # None = n_heads (plain multi-head attention)
    ffn_hidden: int
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    # "half" rotates (x[:D/2], x[D/2:]) like HF Llama; "interleaved" rotates pairs (x[0::2], x[1::2])
    # like Meta's original code and llama.cpp (whose converter permutes Q/K to match).
    rope_style: Literal["half", "interleaved"] = "half"
    tie_embeddings: bool = True
    max_seq_len: int = 1024
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # Slot for the feed-forward kind; Mixture-of-Experts variants plug in here.
    ffn_kind: Literal["dense"] = "dense"
    tokenizer: str = "bpe"  # tokenizer name (informational; the weights ship with tokenizer.json)
    chat_template: str = "chatml"
    default_system: str | None = None  # system prompt the chat template inserts when none is given
    eos_token: str = "<|im_end|>"
    adapter: AdapterConfig | None = None  # a LoRA adapter the loaders merge into the weights

    @model_validator(mode="after")
    def _check_shapes(self) -> "ModelConfig":
        kv = self.kv_heads
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.n_heads % kv:
            raise ValueError(f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({kv})")
        if self.head_dim % 2:
            raise ValueError(f"head dim d_model/n_heads ({self.head_dim}) must be even for RoPE")
        return self

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def num_params(self, include_embeddings: bool = True) -> int:
        """Parameter count computed from the shapes (matches `sum(p.numel())` of the model)."""
        d, hd = self.d_model, self.head_dim
        attn = d * self.n_heads * hd * 2 + d * self.kv_heads * hd * 2
        ffn = 3 * d * self.ffn_hidden
        per_layer = attn + ffn + 2 * d
        emb = self.vocab_size * d * (1 if self.tie_embeddings else 2)
        total = self.n_layers * per_layer + d + (emb if include_embeddings else 0)
        return total


def format_validation_error(exc: ValidationError, source: str, fields: Iterable[str] | None = None) -> str:
    """One line naming the source and every bad field; an unknown key gets the closest of `fields`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + did_you_mean(str(err["loc"][-1]), fields or ())
        parts.append(f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def _model_fields_hint() -> str:
    return ", ".join(ModelConfig.model_fields)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset `name` (a built-in name or a YAML path); cheap, so callers check it first."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        hint = did_you_mean(name, list_presets())
        raise ConfigError(f"unknown preset {name!r}{hint}; valid presets: {', '.join(list_presets())} (or a YAML file)")
    return path


def load_preset(name: str) -> ModelConfig:
    """Load `llm/presets/<name>.yaml` (or a YAML path) into a ModelConfig."""
    path = preset_path(name)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys")
    try:
        return ModelConfig(**data)
    except ValidationError as exc:
        message = format_validation_error(exc, str(path), ModelConfig.model_fields)
        raise ConfigError(f"{message} (valid keys: {_model_fields_hint()})") from exc


def parse_value(raw: str, where: str = "") -> Any:
    """Parse an override value as YAML, also accepting floats like `3e-4` that YAML 1.1 reads as strings."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {where or raw!r}: value is not valid YAML") from exc
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (values parsed as YAML) to a nested dict, returning a new dict."""
    out = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        value = parse_value(raw, item)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out
