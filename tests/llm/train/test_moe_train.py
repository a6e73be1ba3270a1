"""Training a Mixture-of-Experts model: loss goes down, metrics.jsonl carries the MoE statistics,
the aux-free bias moves after optimizer steps, `llm plot --moe` draws the heat map."""

import json

import pytest

from llm.checkpoint import load_checkpoint
from llm.errors import DataError
from llm.moe import moe_layers
from llm.train.plot import plot_moe
from llm.train.pretrain import pretrain

MOE = ["model.moe.n_experts=4", "model.moe.top_k=2", "model.moe.expert_hidden=32"]


def test_moe_nano_trains_and_logs_expert_statistics(tiny_cfg, tmp_path):
    result = pretrain(
        tiny_cfg(*MOE, "model.moe.balance=aux_free", "model.moe.bias_update_rate=0.01", "model.moe.router_z_loss_coef=0.001",
                 "train.max_steps=30", "train.lr=1e-2")
    )
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5, (rows[0]["loss"], rows[-1]["loss"])
    layer = rows[-1]["moe"][0]
    assert len(rows[-1]["moe"]) == 2 and len(layer["load"]) == 4
    assert sum(layer["load"]) == pytest.approx(1.0, abs=1e-3)
    assert layer["max_vio"] >= 0 and 0 < layer["entropy"] <= 1.3863 + 1e-4 and layer["dropped"] == 0
    assert any(b != 0 for b in layer["bias"])  # moved by sign(mean load - load), ±0.01 a step
    assert all(abs(round(b / 0.01) * 0.01 - b) < 1e-6 for b in layer["bias"])
    assert rows[-1]["moe/aux_loss"] > 0  # the z-loss alone here
    ck = load_checkpoint(result.checkpoint)  # the bias is saved with the weights
    assert moe_layers(ck.model)[0].router_bias.tolist() == pytest.approx(layer["bias"], abs=1e-6)
    png = plot_moe(result.run_dir, tmp_path / "moe.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aux_loss_and_capacity_are_logged(tiny_cfg):
    result = pretrain(tiny_cfg(*MOE, "model.moe.balance=aux_loss", "model.moe.capacity_factor=0.5", "run.name=cap"))
    row = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["moe/aux_loss"] > 0.005  # 0.01 * (n sum f P >= ~1) per layer
    assert row["moe/dropped"] > 0 and all(r["dropped"] > 0 for r in row["moe"])
    assert all(b == 0 for r in row["moe"] for b in r["bias"])  # no bias updates without aux_free


def test_plot_moe_refuses_a_dense_run(tiny_cfg, tmp_path):
    result = pretrain(tiny_cfg("run.name=dense", "train.max_steps=2", "eval.every=0", "checkpoint.every=0"))
    with pytest.raises(DataError, match="no MoE statistics"):
        plot_moe(result.run_dir, tmp_path / "x.png")
