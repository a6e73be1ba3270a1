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

__all__ = ["ModelConfig", "MoEConfig", "AdapterConfig", "LORA_TARGETS", "load_preset", "preset_path", "list_presets", "apply_overrides", "parse_value", "format_validation_error"]

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


class MoEConfig(BaseModel):
    """A sparse Mixture-of-Experts feed-forward (the `moe:` block; see docs/moe.md).

    Each token's router picks `top_k` of `n_experts` SwiGLU experts of width `expert_hidden`
    (default: the model's `ffn_hidden`); `n_shared` always-on experts of the same width see
    every token (DeepSeekMoE, Dai et al. 2024, §3.1 fine-grained and §3.2 shared experts).
    """

    model_config = ConfigDict(extra="forbid")

    n_experts: int = 8
    top_k: int = 2
    n_shared: int = 0
    expert_hidden: int | None = None  # None = the model's ffn_hidden
    router: Literal["softmax", "sigmoid"] = "softmax"
    # aux_loss: Switch/GShard n * sum f_i P_i; aux_free: DeepSeek-V3's selection bias; none: neither
    balance: Literal["aux_loss", "aux_free", "none"] = "aux_loss"
    aux_loss_coef: float = 0.01
    bias_update_rate: float = 0.001  # gamma of the aux-free bias update
    router_z_loss_coef: float = 0.0  # ST-MoE's z-loss (Zoph et al. 2022, eq. 5); 1e-3 there
    capacity_factor: float | None = None  # None = no capacity limit; else ceil(cf * tokens * top_k / n_experts)
    layers: list[int] | None = None  # which blocks are MoE (None = all)

    @model_validator(mode="after")
    def _check(self) -> "MoEConfig":
        if self.n_experts < 1:
            raise ValueError(f"moe.n_experts must be >= 1, got {self.n_experts}")
        if not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"moe.top_k must be between 1 and moe.n_experts ({self.n_experts}), got {self.top_k}")
        if self.n_shared < 0:
            raise ValueError(f"moe.n_shared must be >= 0, got {self.n_shared}")
        if self.expert_hidden is not None and self.expert_hidden < 1:
            raise ValueError(f"moe.expert_hidden must be >= 1, got {self.expert_hidden}")
        for name in ("aux_loss_coef", "bias_update_rate", "router_z_loss_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"moe.{name} must be >= 0, got {getattr(self, name)}")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ValueError(f"moe.capacity_factor must be > 0 (or null for no limit), got {self.capacity_factor}")
        return self


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
    # The feed-forward kind, set from the `moe` block: "moe" when it is set (model.moe=null: dense).
    ffn_kind: Literal["dense", "moe"] = "dense"
    moe: MoEConfig | None = None
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
        self.ffn_kind = "moe" if self.moe is not None else "dense"  # follows the moe block
        if self.moe is not None:
            bad = [i for i in self.moe.layers or [] if not 0 <= i < self.n_layers]
            if bad:
                raise ValueError(f"moe.layers {bad} out of range: the model has layers 0..{self.n_layers - 1}")
        return self

    def is_moe_layer(self, layer: int) -> bool:
        return self.moe is not None and (self.moe.layers is None or layer in self.moe.layers)

    @property
    def expert_hidden(self) -> int:
        return (self.moe.expert_hidden if self.moe else None) or self.ffn_hidden

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def num_params(self, include_embeddings: bool = True, active: bool = False) -> int:
        """Parameter count computed from the shapes (matches `sum(p.numel())` of the model).

        `active` counts what one token uses: in MoE layers the router, the shared experts and
        `top_k` routed experts (the aux-free selection bias is not a weight and is left out).
        """
        d, hd = self.d_model, self.head_dim
        attn = d * self.n_heads * hd * 2 + d * self.kv_heads * hd * 2
        total = d + (self.vocab_size * d * (1 if self.tie_embeddings else 2) if include_embeddings else 0)
        for layer in range(self.n_layers):
            ffn = 3 * d * self.ffn_hidden
            if self.moe is not None and self.is_moe_layer(layer):
                m, expert = self.moe, 3 * d * self.expert_hidden
                routed = m.top_k if active else m.n_experts
                ffn = d * m.n_experts + (routed + m.n_shared) * expert + (0 if active else m.n_experts)
            total += attn + ffn + 2 * d
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
