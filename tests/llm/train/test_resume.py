"""Killed runs resume exactly: the loss sequence after the resume point equals an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from llm.train.config import load_train_config
from llm.train.pretrain import pretrain

# A model large enough that a step takes a few milliseconds, so the kill lands mid-run.
SHAPE = ["model.d_model=64", "model.ffn_hidden=128", "train.seq_len=64", "train.batch_size=8", "model.max_seq_len=64"]
STEPS = 100


def _losses(run_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def _start(overrides):
    return subprocess.Popen(
        [sys.executable, "-m", "llm", "train", "pretrain", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_step(proc, metrics, step: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            if lines and lines[-1].endswith("}") and json.loads(lines[-1])["step"] >= step:
                return
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.stderr.read()}")
        time.sleep(0.005)
    pytest.fail("training did not reach the step in time")


@pytest.fixture
def reference(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, *SHAPE, f"train.max_steps={STEPS}", "checkpoint.every=10", "eval.every=25"]
    ref = pretrain(load_train_config(None, [*overrides, f"run.dir={tmp_path / 'ref'}"]))
    return overrides, _losses(ref.run_dir)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_with_identical_losses(reference, tmp_path, sig):
    overrides, expected = reference
    overrides = [*overrides, f"run.dir={tmp_path / 'killed'}"]
    run = tmp_path / "killed" / "tiny"
    proc = _start(overrides)
    _wait_for_step(proc, run / "metrics.jsonl", 15)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert not (run / "checkpoints" / "final").exists(), "the run finished before the kill: make steps slower"
    state = json.loads((run / "checkpoints" / "last" / "meta.json").read_text())
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert state["steps"] % 10 == 0  # the last periodic checkpoint
        assert max(_losses(run)) > state["steps"]  # steps after it were logged, then lost
    else:
        assert proc.returncode == 130
        assert f"interrupted at step {state['steps']}" in err and "run the same command again to resume" in err
        assert state["steps"] >= 15  # saved where it stopped, not at the last periodic checkpoint
    resumed = subprocess.run(
        [sys.executable, "-m", "llm", "train", "pretrain", *overrides], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming tiny from step {state['steps']}" in resumed.stderr
    got = _losses(run)
    assert sorted(got) == list(range(1, STEPS + 1))  # lines past the checkpoint were dropped and redone once
    assert got == expected  # bit-for-bit, before and after the resume point
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == STEPS and summary["resumed_from_step"] == state["steps"]
