"""Pretraining end to end on a tiny model: run files, checkpoints, accumulation, the NaN guard."""

import json
import math

import pytest
import torch

import llm.train.pretrain as pretrain_module
from llm.checkpoint import load_checkpoint, load_state_dict
from llm.errors import TrainingError
from llm.train.config import load_train_config
from llm.train.pretrain import pretrain


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_metrics_eval_summary_config_and_checkpoints(tiny_cfg):
    result = pretrain(tiny_cfg("train.max_steps=24"))
    run = result.run_dir
    assert result.status == "finished" and result.checkpoint == run / "checkpoints" / "final"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 25))
    assert set(rows[0]) == {"step", "tokens", "loss", "lr", "grad_norm", "tok_per_s", "mfu", "elapsed_s"}
    assert rows[-1]["tokens"] == 24 * 4 * 32
    assert sum(r["loss"] for r in rows[-4:]) < sum(r["loss"] for r in rows[:4])  # it learns
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "step,tokens,loss,lr,grad_norm,tok_per_s,mfu,elapsed_s" and len(csv_lines) == 25
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [4, 8, 12, 16, 20, 24]
    assert all(0 < e["val_bpb"] < e["val_loss"] for e in evals)  # several bytes per token: bpb < nats/token
    s = json.loads((run / "summary.json").read_text())
    for key in (
        "model_size",
        "dataset",
        "lr_schedule",
        "batch_size_tokens",
        "grad_norm_mean",
        "throughput_tok_per_s",
        "throughput_tok_per_sec",
        "mfu",
        "final_val_bpb",
        "final_val_loss",
    ):
        assert key in s, key
    assert s["batch_size_tokens"] == 128 and s["status"] == "finished" and s["steps"] == 24
    assert s["lr_schedule"].startswith("cosine(peak 0.003, warmup 2")
    assert s["final_val_loss"] == pytest.approx(evals[-1]["val_loss"])
    reloaded = load_train_config(run / "config.yaml")
    assert reloaded.model.build().d_model == 32
    ckpt = load_checkpoint(run / "checkpoints" / "final")
    assert ckpt.meta["stage"] == "pretrain" and ckpt.meta["steps"] == 24
    assert (run / "checkpoints" / "last" / "train_state.pt").exists()
    assert not (run / "checkpoints" / "final" / "train_state.pt").exists()


def test_token_milestones_are_reported(tiny_cfg):
    s = pretrain(tiny_cfg("train.max_steps=90", "eval.every=0", "checkpoint.every=0")).summary
    assert s["tokens"] == 90 * 128
    assert math.isfinite(s["loss_at_10000_tokens"]) and "loss_at_20000_tokens" not in s


def test_accumulation_4x2_equals_batch_8(tiny_cfg):
    big = pretrain(tiny_cfg("train.batch_size=8", "run.name=big", "eval.every=0"))
    acc = pretrain(tiny_cfg("train.batch_size=2", "train.grad_accum=4", "run.name=acc", "eval.every=0"))
    assert losses(acc.run_dir) == pytest.approx(losses(big.run_dir), rel=1e-5, abs=1e-5)
    assert acc.summary["final_val_loss"] == pytest.approx(big.summary["final_val_loss"], rel=1e-5)
    wa, wb = load_state_dict(big.checkpoint), load_state_dict(acc.checkpoint)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    assert big.summary["batch_size_tokens"] == acc.summary["batch_size_tokens"] == 8 * 32


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tiny_cfg, monkeypatch):
    calls = {"n": 0}
    real = pretrain_module.lm_loss_sum

    def poisoned(model, batch):
        calls["n"] += 1
        loss = real(model, batch)
        return loss * float("nan") if calls["n"] == 7 else loss  # step 7 (one micro-batch per step)

    monkeypatch.setattr(pretrain_module, "lm_loss_sum", poisoned)
    cfg = tiny_cfg("checkpoint.every=5")
    with pytest.raises(TrainingError) as err:
        pretrain(cfg)
    msg = str(err.value)
    run = cfg.run.dir / "tiny"
    assert "at step 7" in msg and f"last good checkpoint: {run / 'checkpoints' / 'last'} (step 5)" in msg
    assert "\n" not in msg
    good = load_checkpoint(run / "checkpoints" / "last")
    assert good.meta["steps"] == 5
    assert all(torch.isfinite(p).all() for p in good.model.parameters())
    assert not (run / "checkpoints" / "final").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["steps"] == 6


def test_bf16_autocast_trains_close_to_fp32(tiny_cfg):
    fp32 = pretrain(tiny_cfg("run.name=fp32", "eval.every=0"))
    bf16 = pretrain(tiny_cfg("run.name=bf16", "train.precision=bf16", "eval.every=0"))
    a, b = losses(fp32.run_dir), losses(bf16.run_dir)
    assert a != b  # autocast really changed the arithmetic
    assert max(abs(x - y) for x, y in zip(a, b)) < 0.05
