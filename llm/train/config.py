"""`TrainConfig`: the one config of a training run, from YAML plus dotted overrides.

    model:      preset name plus any ModelConfig field to override (model.n_layers=4)
    data:       the prepared-data directory
    train:      optimizer, schedule, batch, length, precision, seed
    eval:       how often and on how many validation batches
    checkpoint: how often to save
    run:        run name and directory, logging, W&B, resume

Field paths are the override paths (`train.lr=3e-4`). The resolved config (preset expanded
into explicit model fields) is saved as `runs/<name>/config.yaml`, which can be fed back
with `-c`. SFT and DPO reuse the same sections. This module knows nothing about torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm.config import ModelConfig, apply_overrides, load_preset, preset_path
from llm.errors import ConfigError, did_you_mean

__all__ = [
    "TrainConfig",
    "ModelSection",
    "DataSection",
    "TrainSection",
    "EvalSection",
    "CheckpointSection",
    "RunSection",
    "load_train_config",
    "dump_train_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(BaseModel):
    """A preset plus overrides of any `ModelConfig` field (checked when the model is built)."""

    model_config = ConfigDict(extra="allow")

    preset: str = "nano"
    checkpoint: str | None = None  # SFT/DPO: the checkpoint (path or pulled name) to start from

    @model_validator(mode="after")
    def _known_fields(self) -> "ModelSection":
        preset_path(self.preset)  # an unknown preset fails here, before any data or checkpoint is read
        unknown = sorted(set(self.model_extra or {}) - set(ModelConfig.model_fields))
        if unknown:
            hint = did_you_mean(unknown[0], ["preset", "checkpoint", *ModelConfig.model_fields])
            raise ValueError(
                f"unknown model field(s) {', '.join(unknown)}{hint}; valid: preset, checkpoint, {', '.join(ModelConfig.model_fields)}"
            )
        return self

    def build(self) -> ModelConfig:
        """The preset with the overrides applied."""
        base = load_preset(self.preset).model_dump()
        extra = self.model_extra or {}
        # nested blocks merge key by key, so model.moe.top_k=4 keeps the preset's other moe fields
        merged = {k: {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v for k, v in extra.items()}
        try:
            return ModelConfig(**{**base, **merged})
        except ValidationError as exc:
            raise ConfigError(f"model (preset {self.preset!r} + overrides): {_one_line(exc)}") from exc


class DataSection(_Section):
    dir: Path | None = None  # pretraining: a directory written by `llm data prepare`
    # SFT/DPO: a JSON/JSONL/Parquet file or a hub dataset name, in one of the row formats
    path: str | None = None
    format: str | None = None  # sft: messages|sharegpt|alpaca; dpo: pairs|hh-rlhf|ultrafeedback
    val_fraction: float = Field(0.05, ge=0, lt=1)  # rows held back for validation loss
    skip_bad: bool = False  # leave out invalid rows (counted and reported) instead of stopping
    packing: bool = True  # SFT: best-fit packing into seq_len rows; false = one example per row, padded


class TrainSection(_Section):
    lr: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)  # final LR = lr * min_lr_ratio (cosine, wsd)
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup_steps: int = Field(20, ge=0)
    decay_fraction: float = Field(0.2, gt=0, le=1)  # WSD: share of steps spent decaying at the end
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(1.0, ge=0)  # max global grad norm; 0 disables clipping
    batch_size: int = Field(8, ge=1)  # sequences per micro-batch per process
    seq_len: int = Field(256, ge=1)
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step
    max_steps: int | None = Field(200, ge=1)
    max_tokens: int | None = Field(None, ge=1)  # if set, overrides max_steps
    epochs: float | None = Field(None, gt=0)  # SFT/DPO: passes over the training rows; wins over max_steps
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 = autocast; weights and optimizer stay float32
    seed: int = 1337
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)  # CPU threads per process; default cores / local processes


class EvalSection(_Section):
    every: int = Field(100, ge=0)  # steps between evaluations; 0 = only at the end
    sequences: int = Field(160, ge=1)  # validation windows of seq_len per evaluation (same set for any batch shape)


class CheckpointSection(_Section):
    every: int = Field(200, ge=0)  # steps between checkpoints; 0 = only at the end and on a signal


class RunSection(_Section):
    name: str | None = None  # default: <preset>-<data dir name>
    dir: Path = Path("runs")
    log_every: int = Field(10, ge=1)  # steps between metrics.jsonl lines
    wandb: bool = False
    resume: bool = True  # continue from runs/<name>/checkpoints/last when it exists
    progress: bool = True  # rich progress bar on a terminal
    out: Path | None = None  # where the final checkpoint goes (default runs/<name>/checkpoints/final)


class LoraSection(_Section):
    rank: int = Field(0, ge=0)  # 0 = full fine-tune
    alpha: float = Field(32.0, gt=0)
    targets: list[str] = ["q", "k", "v", "o", "gate", "up", "down"]


class DpoSection(_Section):
    beta: float = Field(0.1, gt=0)
    loss: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    precompute_ref: bool = False  # one reference pass up front, cached next to the data


class TrainConfig(_Section):
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()
    checkpoint: CheckpointSection = CheckpointSection()
    run: RunSection = RunSection()
    lora: LoraSection = LoraSection()
    dpo: DpoSection = DpoSection()

    def run_name(self) -> str:
        if self.run.name:
            return self.run.name
        data = self.data.dir.name if self.data.dir else "nodata"
        return f"{self.model.preset}-{data}"


_SECTIONS = {
    "model": ModelSection,
    "data": DataSection,
    "train": TrainSection,
    "eval": EvalSection,
    "checkpoint": CheckpointSection,
    "run": RunSection,
    "lora": LoraSection,
    "dpo": DpoSection,
}


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        key = ".".join(loc) or "(root)"
        if err["type"] == "extra_forbidden":
            section = _SECTIONS.get(loc[0]) if len(loc) == 2 else None
            valid = list(section.model_fields) if section else list(_SECTIONS)
            parts.append(f"{key}: unknown key{did_you_mean(loc[-1], valid)} (valid: {', '.join(valid)})")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{key}: {msg}")
    return "; ".join(parts)


def load_train_config(
    path: str | Path | None = None, overrides: list[str] | None = None, defaults: list[str] | None = None
) -> TrainConfig:
    """Read YAML (optional), apply `a.b=value` overrides, validate; errors name the file and the key.

    `defaults` are a stage's own defaults (SFT's small LR, say): applied first, so the YAML
    file and the overrides both win over them.
    """
    data: dict[str, Any] = apply_overrides({}, defaults) if defaults else {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping with sections {', '.join(_SECTIONS)}")
        data = _deep_merge(data, loaded)
    if overrides:
        data = apply_overrides(data, overrides)
        source = "overrides" if path is None else source + " + overrides"
    try:
        return TrainConfig(**data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_one_line(exc)}") from exc


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def dump_train_config(cfg: TrainConfig, model: ModelConfig | None = None) -> str:
    """YAML of `cfg`; with `model`, the model section lists every resolved field (re-loadable with -c)."""
    data = cfg.model_dump(mode="json")
    if model is not None:
        data["model"] = {"preset": cfg.model.preset, **model.model_dump(mode="json")}
    return yaml.safe_dump(data, sort_keys=False)
