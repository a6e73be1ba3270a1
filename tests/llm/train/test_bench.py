"""`llm bench train|matmul` and the FLOP count behind MFU."""

import json

import pytest

from llm.config import load_preset
from llm.train.bench import bench_train
from llm.train.flops import flops_per_token, load_matmul_peak, measure_matmul_peak, save_matmul_peak


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
