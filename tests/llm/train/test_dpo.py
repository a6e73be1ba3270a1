"""DPO: each loss equals its closed form, training raises reward accuracy, precomputed reference = live."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from posttrain_kit import calc_pair, write_jsonl

from llm.checkpoint import load_checkpoint
from llm.data.chat_data import load_dpo_rows
from llm.train.config import load_train_config
from llm.train.dpo import DPO_DEFAULTS, _collate, dpo, dpo_loss, precompute_reference, render_pairs, sequence_logps
from llm.train.finetune import template_of


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("kind", ["sigmoid", "ipo", "hinge"])
def test_dpo_loss_matches_the_closed_form(kind):
    pi_c, pi_r, ref_c, ref_r, beta = -3.0, -5.5, -4.0, -4.5, 0.2
    h = (pi_c - ref_c) - (pi_r - ref_r)  # 1.0 - (-1.0) = 2.0
    want = {
        "sigmoid": -math.log(sigmoid(beta * h)),
        "ipo": (h - 1 / (2 * beta)) ** 2,
        "hinge": max(0.0, 1 - beta * h),
    }[kind]
    t = lambda v: torch.tensor([v])  # noqa: E731
    got = dpo_loss(t(pi_c), t(pi_r), t(ref_c), t(ref_r), beta, kind)
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_sequence_logps_sums_the_reply_tokens_only(chat_ckpt):
    ck = load_checkpoint(chat_ckpt)
    pairs, _ = render_pairs(ck.tokenizer, [calc_pair(12, 34)], template_of(ck.config), 256)
    batch = _collate(pairs, 0)
    with torch.no_grad():
        got = sequence_logps(ck.model, batch.inputs, batch.targets)
    ids, mask = pairs[0].chosen
    with torch.no_grad():
        logits, _ = ck.model(torch.tensor([ids]))
    logp = torch.log_softmax(logits[0].float(), -1)
    want = sum(float(logp[i, ids[i + 1]]) for i in range(len(ids) - 1) if mask[i + 1])
    assert float(got[0]) == pytest.approx(want, abs=1e-4)


def test_precomputed_reference_equals_live(chat_ckpt, tmp_path):
    import contextlib

    ck = load_checkpoint(chat_ckpt)
    rows = [calc_pair(a, a + 7) for a in range(3, 9)]
    pairs, _ = render_pairs(ck.tokenizer, rows, template_of(ck.config), 256)
    cache = tmp_path / "ref.json"
    precompute_reference(ck.model, pairs, 0, 2, cache, contextlib.nullcontext)
    live = sequence_logps(ck.model, *(_collate(pairs, 0).inputs, _collate(pairs, 0).targets)).tolist()
    n = len(pairs)
    for j, p in enumerate(pairs):
        assert p.ref == pytest.approx((live[j], live[j + n]), abs=1e-4)
    # the cache is read back as it was written
    again, _ = render_pairs(ck.tokenizer, rows, template_of(ck.config), 256)
    precompute_reference(None, again, 0, 2, cache, contextlib.nullcontext)
    assert [p.ref for p in again] == [p.ref for p in pairs]


@pytest.mark.parametrize("lora", [False, True])
def test_a_few_dpo_steps_raise_reward_accuracy(chat_ckpt, post_overrides, tmp_path, lora):
    rng = random.Random(5)
    data = write_jsonl(tmp_path / "pairs.jsonl", [calc_pair(rng.randint(2, 99), rng.randint(2, 99)) for _ in range(16)])
    extra = ["lora.rank=4", "train.lr=1e-2"] if lora else ["train.lr=2e-3"]
    cfg = load_train_config(None, [f"model.checkpoint={chat_ckpt}", f"data.path={data}", f"run.out={tmp_path / 'dpo'}",
                                   "run.name=dpo-test", "train.epochs=4", "train.batch_size=4", "train.grad_accum=1",
                                   "data.val_fraction=0", *post_overrides, *extra], defaults=DPO_DEFAULTS)
    result = dpo(cfg)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["rewards/accuracies"] > rows[0]["rewards/accuracies"] or rows[-1]["rewards/accuracies"] == 1.0
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"]
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=0.05)  # the policy starts equal to its reference
    for key in ("rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"):
        assert key in rows[-1]
    assert (tmp_path / "dpo" / "adapter.safetensors").exists() == lora


def test_dpo_rows_from_the_shipped_samples_render(chat_ckpt):
    from pathlib import Path

    ck = load_checkpoint(chat_ckpt)
    samples = Path(__file__).resolve().parents[3] / "llm" / "data" / "samples"
    rows = load_dpo_rows(samples / "dpo-pairs.jsonl").rows
    pairs, dropped = render_pairs(ck.tokenizer, rows, template_of(ck.config), 512)
    assert dropped == 0 and len(pairs) == 3
    for p in pairs:
        (ci, cm), (ri, rm) = p.chosen, p.rejected
        first = cm.index(1)
        assert rm.index(1) == first and ci[:first] == ri[:first]  # the shared prompt is never scored
        assert ck.tokenizer.decode(ci[:first]).endswith("<|im_start|>assistant\n")
        assert ck.tokenizer.decode([t for t, m in zip(ci, cm) if m]).endswith("<|im_end|>")
