"""TrainConfig: YAML + dotted overrides, one-line errors naming the key and the valid choices."""

import pytest

from llm.errors import ConfigError
from llm.train.config import dump_train_config, load_train_config


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "cfg.yaml"
    f.write_text("model: {preset: micro, n_layers: 3}\ntrain: {lr: 0.01, batch_size: 4}\n")
    cfg = load_train_config(f, ["train.lr=3e-4", "run.name=x"])
    assert cfg.train.lr == 3e-4 and cfg.train.batch_size == 4 and cfg.run_name() == "x"
    model = cfg.model.build()
    assert (model.name, model.n_layers, model.d_model) == ("micro", 3, 256)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_train_config(None, ["model.preset=nano", "model.d_model=64", "train.precision=bf16"])
    f = tmp_path / "config.yaml"
    f.write_text(dump_train_config(cfg, cfg.model.build()))
    again = load_train_config(f)
    assert again.model.build() == cfg.model.build()
    assert again.train == cfg.train


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["train.lrr=3"], "train.lrr: unknown key (did you mean lr?) (valid: lr, min_lr_ratio"),
        (["trian.lr=3"], "trian: unknown key (did you mean train?) (valid: model, data, train"),
        (["model.d_modle=64"], "unknown model field(s) d_modle (did you mean d_model?); valid: preset, checkpoint, name, vocab_size, d_model"),
        (["train.schedule=linear"], "train.schedule: Input should be 'cosine', 'wsd' or 'constant'"),
        (["train.lr=-1"], "train.lr: Input should be greater than 0"),
        (["train.lr"], "must look like key.path=value"),
    ],
)
def test_typos_are_one_line_errors(overrides, needle):
    with pytest.raises(ConfigError) as err:
        load_train_config(None, overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_model_values_and_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'huge'; valid presets: "):
        load_train_config(None, ["model.preset=huge"]).model.build()
    with pytest.raises(ConfigError, match="d_model .* must be divisible by n_heads"):
        load_train_config(None, ["model.d_model=100", "model.n_heads=3"]).model.build()
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(bad)
    assert str(err.value).startswith(f"{bad}: invalid YAML") and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(tmp_path / "missing.yaml")
