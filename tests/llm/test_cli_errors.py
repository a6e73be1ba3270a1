"""The `llm` command's answers to typos: the cheap input is checked first, a near miss gets a
"did you mean", the valid choices are listed, and no install path or pydantic wording leaks."""

from pathlib import Path

import pytest

import llm
from llm.cli import main
from llm.errors import ModelNotFound, did_you_mean
from llm.hub import resolve_model

INSTALL_DIR = str(Path(llm.__file__).parent)


def test_did_you_mean_names_the_closest_choice_or_nothing():
    assert did_you_mean("mni", ["micro", "mini", "nano"]) == " (did you mean mini?)"
    assert did_you_mean("lrr", ["lr", "seed"]) == " (did you mean lr?)"
    assert did_you_mean("zzz", ["mini", "nano"]) == ""


def error_line(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert INSTALL_DIR not in lines[0] and "Extra inputs are not permitted" not in lines[0]
    return lines[0]


def test_near_miss_model_name_and_missing_path_get_different_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_HOME", str(tmp_path))
    with pytest.raises(ModelNotFound) as near:
        resolve_model("smollm2-135m-instruc")
    assert "unknown model 'smollm2-135m-instruc' (did you mean smollm2-135m-instruct?)" in str(near.value)
    assert "known models: smollm2-135m-instruct" in str(near.value)
    with pytest.raises(ModelNotFound) as path:
        resolve_model("./no/such/ckpt")
    assert "no checkpoint directory at ./no/such/ckpt: the path does not exist" in str(path.value)
    assert "did you mean" not in str(path.value)


def test_pull_of_a_near_miss_name_suggests_the_registry_name(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_HOME", str(tmp_path))
    line = error_line(capsys, "pull", "smollm2-135m-instruc")
    assert "unknown model 'smollm2-135m-instruc' (did you mean smollm2-135m-instruct?)" in line
    assert not any(tmp_path.iterdir())  # nothing fetched


def test_experiment_typo_suggests_the_name(capsys):
    line = error_line(capsys, "experiment", "lr-swep")
    assert "unknown experiment 'lr-swep' (did you mean lr-sweep?); choose one of: chinchilla, lr-sweep" in line


def test_unknown_preset_is_named_before_the_missing_data_dir(capsys):
    line = error_line(capsys, "train", "pretrain", "--preset", "mni")
    assert "unknown preset 'mni' (did you mean mini?)" in line
    assert "valid presets: micro, mini, nano" in line and "data.dir" not in line
    line = error_line(capsys, "train", "pretrain", "model.preset=nanoo")
    assert "(did you mean nano?)" in line and "data.dir" not in line


@pytest.mark.parametrize(
    "override, hint, valid",
    [
        ("train.lrr=3e-4", "train.lrr: unknown key (did you mean lr?)", "valid: lr, min_lr_ratio"),
        ("trainn.lr=3e-4", "trainn: unknown key (did you mean train?)", "valid: model, data, train"),
        ("model.d_modle=64", "unknown model field(s) d_modle (did you mean d_model?)", "valid: preset, checkpoint"),
    ],
)
def test_dotted_override_typos_list_the_valid_keys(capsys, override, hint, valid):
    line = error_line(capsys, "train", "pretrain", "--preset", "nano", override)
    assert hint in line and valid in line


def test_config_file_typo_names_the_file_and_the_key(capsys, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("train:\n  lrr: 0.001\n")
    line = error_line(capsys, "train", "pretrain", "-c", str(cfg))
    assert f"{cfg}: train.lrr: unknown key (did you mean lr?)" in line
