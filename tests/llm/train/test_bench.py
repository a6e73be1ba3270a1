"""`llm bench train|matmul` and the FLOP count behind MFU."""

import json

import pytest

from llm.config import load_preset
from llm.train.bench import bench_train
from llm.train.flops import (
    flops_per_token,
    load_matmul_peak,
    measure_matmul_peak,
    save_matmul_peak,
)


def test_flops_per_token_matches_the_6n_plus_attention_count():
    cfg = load_preset("nanogpt-shape")
    assert cfg.num_params() == 12_194_688
    assert flops_per_token(cfg, 256) == 6 * 12_194_688 + 12 * 6 * 384 * 256
    untied = cfg.model_copy(update={"tie_embeddings": False})
    assert flops_per_token(untied, 256) == flops_per_token(cfg, 256) + 6 * 4096 * 384 - 6 * 4096 * 384


def test_bench_train_reports_throughput_and_mfu(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_HOME", str(tmp_path))
    tiny = [
        "model.d_model=32",
        "model.n_layers=1",
        "model.n_heads=2",
        "model.n_kv_heads=2",
        "model.ffn_hidden=64",
        "model.vocab_size=256",
        "train.threads=1",
    ]
    r = bench_train("nano", "fp32", batch_size=2, seq_len=16, steps=2, rounds=2, warmup=1, overrides=tiny)
    assert r["tok_per_s"] > 0 and len(r["tok_per_s_rounds"]) == 2 and r["mfu"] is None  # no peak measured yet
    save_matmul_peak(measure_matmul_peak(sizes=(64,), repeats=1, seconds=0.001))
    assert load_matmul_peak("fp32") > 0 and load_matmul_peak("bf16") > 0
    r = bench_train("nano", "bf16", batch_size=2, seq_len=16, steps=1, rounds=1, warmup=1, overrides=tiny)
    assert r["precision"] == "bf16" and r["mfu"] == pytest.approx(
        r["tok_per_s"] * r["model_flops_per_token"] / load_matmul_peak("bf16")
    )
    json.dumps(r)  # --json prints exactly this object


# A stand-in with the interface of nanoGPT's model.py (GPTConfig, GPT(config), forward(idx, targets),
# configure_optimizers), written for this test: the benchmark imports whatever checkout it is pointed at.
STAND_IN = '''
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    block_size: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float
    bias: bool


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        print("number of parameters: many")

    def forward(self, idx, targets):
        logits = self.head(self.emb(idx))
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        print(f"using fused AdamW: {device_type == 'cuda'}")
        return torch.optim.AdamW(self.parameters(), lr=learning_rate, betas=betas, fused=device_type == "cuda")
'''


def test_bench_train_times_a_nanogpt_checkout_beside_ours(monkeypatch, tmp_path, capsys):
    from llm.errors import ConfigError

    monkeypatch.setenv("LLM_HOME", str(tmp_path))
    (tmp_path / "model.py").write_text(STAND_IN)
    tiny = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=2",
            "model.ffn_hidden=64", "model.vocab_size=256", "train.threads=1"]
    r = bench_train("nano", "bf16", batch_size=2, seq_len=16, steps=1, rounds=2, warmup=1, overrides=tiny,
                    nanogpt=tmp_path)
    assert set(r["peers"]) == {"nanogpt", "nanogpt_fused_adamw"}
    for peer in r["peers"].values():
        assert len(peer["tok_per_s_rounds"]) == 2 and peer["mfu"] is None
        assert peer["llm_speedup"] == pytest.approx(r["tok_per_s"] / peer["tok_per_s"])
    assert "number of parameters" not in capsys.readouterr().out  # --json output stays one object
    with pytest.raises(ConfigError, match="no model.py there"):
        bench_train("nano", "fp32", batch_size=2, seq_len=16, steps=1, rounds=1, warmup=0, overrides=tiny,
                    nanogpt=tmp_path / "missing")
