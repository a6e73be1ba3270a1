import pytest

from llm.config import ModelConfig, apply_overrides, list_presets, load_preset
from llm.errors import ConfigError
from llm.model import GPT


@pytest.mark.parametrize("name,lo,hi", [("nano", 0.8e6, 1.6e6), ("micro", 4e6, 6e6), ("mini", 15e6, 22e6)])
def test_presets_have_documented_sizes(name, lo, hi):
    cfg = load_preset(name)
    n = GPT(cfg).num_params()
    assert n == cfg.num_params()
    assert lo <= n <= hi


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_preset("gigantic")
    for p in list_presets():
        assert p in str(e.value)


def test_unknown_key_is_named(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("vocab_size: 10\nd_model: 16\nn_layers: 1\nn_heads: 2\nffn_hidden: 8\nd_modle: 3\n")
    with pytest.raises(ConfigError) as e:
        load_preset(str(f))
    assert "d_modle: unknown key" in str(e.value) and str(f) in str(e.value)


def test_shape_validation():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(vocab_size=10, d_model=30, n_layers=1, n_heads=4, ffn_hidden=8)
    with pytest.raises(ValueError, match="n_kv_heads"):
        ModelConfig(vocab_size=10, d_model=32, n_layers=1, n_heads=4, n_kv_heads=3, ffn_hidden=8)


def test_dotted_overrides():
    out = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=3e-4", "model.d_model=64"])
    assert out == {"train": {"lr": 3e-4}, "model": {"d_model": 64}}
    with pytest.raises(ConfigError):
        apply_overrides({}, ["novalue"])
