"""DDP: `torchrun --nproc-per-node 2` (gloo, CPU) trains the same model as one process with accumulation 2."""

import json
import subprocess
import sys

import pytest
import torch

from llm.checkpoint import load_state_dict
from llm.train.config import load_train_config
from llm.train.pretrain import pretrain


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_process_ddp_equals_one_process_with_accumulation(tiny_overrides, tmp_path):
    common = [*tiny_overrides, "train.batch_size=4", "train.max_steps=8", "eval.every=4", "checkpoint.every=0"]
    single = pretrain(load_train_config(None, [*common, "train.grad_accum=2", f"run.dir={tmp_path / 'one'}"]))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "llm",
            "train",
            "pretrain",
            *common,
            "train.grad_accum=1",
            f"run.dir={tmp_path / 'ddp'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("checkpoints/final") == 1  # only rank 0 reports
    ddp_run = tmp_path / "ddp" / "tiny"
    a, b = _rows(single.run_dir), _rows(ddp_run)
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b]
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-5)
    assert [r["grad_norm"] for r in b] == pytest.approx([r["grad_norm"] for r in a], rel=1e-4)
    ev_a = [json.loads(x) for x in (single.run_dir / "eval.jsonl").read_text().splitlines()]
    ev_b = [json.loads(x) for x in (ddp_run / "eval.jsonl").read_text().splitlines()]
    assert [e["val_loss"] for e in ev_b] == pytest.approx([e["val_loss"] for e in ev_a], rel=1e-5)  # sharded eval
    wa, wb = load_state_dict(single.checkpoint), load_state_dict(ddp_run / "checkpoints" / "final")
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-6)
    summary = json.loads((ddp_run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["batch_size_tokens"] == 2 * 4 * 32
