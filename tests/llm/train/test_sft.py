"""SFT: packing keeps examples apart, the assistant loss falls, the model learns to call the tool, resume is exact."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from posttrain_kit import calc_conversation, write_jsonl

from llm.chat_template import ChatTemplate, parse_tool_calls, render_chat
from llm.checkpoint import load_checkpoint
from llm.data.packing import Example, PackedRows, pack_best_fit
from llm.train.config import load_train_config
from llm.train.sft import SFT_DEFAULTS, sft


def conversations(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [calc_conversation(rng.randint(2, 99), rng.randint(2, 99)) for _ in range(n)]


def test_best_fit_packing_fills_rows_without_overflow():
    lengths = [7, 5, 5, 4, 3, 3, 2, 1]
    bins = pack_best_fit(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 3  # 30 tokens in rows of 10: best fit leaves no row half empty


def test_packed_examples_do_not_see_each_other(chat_ckpt):
    """Logits of an example packed behind others equal its logits alone (positions and attention restart)."""
    ck = load_checkpoint(chat_ckpt)
    tok = ck.tokenizer
    exs = []
    for conv in conversations(3, 1):
        ids, mask = render_chat(tok, conv["messages"], conv["tools"])
        exs.append(Example(ids, mask))
    rows = PackedRows(exs, seq_len=sum(len(e.ids) for e in exs) + 5, packing=True, pad_id=0)
    assert len(rows) == 1
    batch = rows.batch([0])
    with torch.no_grad():
        packed, _ = ck.model(batch.inputs, positions=batch.positions, doc_ids=batch.doc_ids)
        at = 0
        for i in rows.rows[0]:
            ids = exs[i].ids
            alone, _ = ck.model(torch.tensor([ids]))
            torch.testing.assert_close(packed[0, at : at + len(ids)], alone[0], atol=1e-5, rtol=1e-5)
            at += len(ids)
    # targets: only supervised tokens, never across the boundary of two examples
    assert batch.n_targets == sum(e.n_targets for e in exs)


def test_unpacked_rows_are_padded_per_batch(chat_ckpt):
    ck = load_checkpoint(chat_ckpt)
    exs = [Example(*render_chat(ck.tokenizer, c["messages"], c["tools"])) for c in conversations(2, 2)]
    rows = PackedRows(exs, seq_len=256, packing=False, pad_id=0)
    batch = rows.batch([0, 1])
    assert batch.inputs.shape == (2, max(len(e.ids) for e in exs))
    assert batch.n_targets == sum(e.n_targets for e in exs)


def _cfg(ckpt, data, out, overrides, *extra):
    return load_train_config(None, [f"model.checkpoint={ckpt}", f"data.path={data}", f"run.out={out}",
                                    "run.name=sft-test", *overrides, *extra], defaults=SFT_DEFAULTS)


def test_sft_lowers_assistant_loss_and_learns_the_tool_call(chat_ckpt, post_overrides, tmp_path):
    data = write_jsonl(tmp_path / "calc.jsonl", conversations(40, 3))
    out = tmp_path / "sft"
    cfg = _cfg(chat_ckpt, data, out, post_overrides, "train.lr=3e-3", "train.epochs=12", "train.grad_accum=1",
               "train.batch_size=2", "data.val_fraction=0.1")
    result = sft(cfg)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert rows[-1]["mean_token_accuracy"] > rows[0]["mean_token_accuracy"]
    assert all(r["supervised_tok_per_s"] > 0 for r in rows)
    assert result.summary["final_val_loss"] is not None
    # greedy reply to a held-back question is a well-formed tool call with the right expression
    ck = load_checkpoint(out)
    assert json.loads((out / "meta.json").read_text())["stage"] == "sft"
    held_out = calc_conversation(123, 45)
    ids, _ = render_chat(ck.tokenizer, held_out["messages"][:1], held_out["tools"], add_generation_prompt=True,
                         template=ChatTemplate())
    end = ck.tokenizer.special_tokens["<|im_end|>"]
    x = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(60):
            nxt = int(ck.model(x)[0][0, -1].argmax())
            if nxt == end:
                break
            x = torch.cat([x, torch.tensor([[nxt]])], dim=1)
    _, calls = parse_tool_calls(ck.tokenizer.decode(x[0, len(ids):].tolist()))
    assert len(calls) == 1 and calls[0].name == "calculator" and "expression" in calls[0].arguments


def _final_loss(run_dir) -> float:
    return json.loads((run_dir / "summary.json").read_text())["final_train_loss"]


@pytest.mark.slow
def test_sigkill_mid_sft_then_resume_matches_an_uninterrupted_run(chat_ckpt, post_overrides, tmp_path):
    data = write_jsonl(tmp_path / "calc.jsonl", conversations(40, 4))
    common = [f"--model={chat_ckpt}", f"--data={data}", "--max-steps=40", *post_overrides,
              "checkpoint.every=2", "train.lr=1e-3", "train.grad_accum=1", "train.batch_size=1", "data.packing=false"]
    llm = [sys.executable, "-m", "llm", "train", "sft"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*llm, *common, "--name=straight", f"--out={tmp_path / 'a'}"], check=True, env=env,
                   capture_output=True)
    proc = subprocess.Popen([*llm, *common, "--name=killed", f"--out={tmp_path / 'b'}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "runs" / "killed" / "checkpoints" / "last" / "train_state.pt"
    while not state.exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (tmp_path / "runs" / "killed" / "summary.json").exists():
        pytest.skip("the run finished before it could be killed")
    subprocess.run([*llm, *common, "--name=killed", f"--out={tmp_path / 'b'}"], check=True, env=env,
                   capture_output=True)
    a, b = tmp_path / "runs" / "straight", tmp_path / "runs" / "killed"
    assert json.loads((b / "summary.json").read_text())["resumed_from_step"] >= 2
    assert _final_loss(b) == pytest.approx(_final_loss(a), rel=1e-6)
