"""LoRA: adapters start as a no-op, merge exactly, round-trip through checkpoints, and train only themselves."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from llm.checkpoint import load_checkpoint, load_config
from llm.config import AdapterConfig
from llm.lora import adapters_disabled, apply_lora, merge_lora
from llm.train.finetune import merge_checkpoint


def _adapted(path, rank=4):
    ck = load_checkpoint(path)
    apply_lora(ck.model, AdapterConfig(rank=rank, alpha=8, targets=["q", "k", "v", "o", "gate", "up", "down"]))
    torch.manual_seed(1)
    for name, p in ck.model.named_parameters():
        if name.endswith("lora_B"):
            torch.nn.init.normal_(p, std=0.05)  # B starts at 0; give it something to merge
    return ck


def test_only_adapters_train_and_merged_equals_unmerged(chat_ckpt):
    ck = _adapted(chat_ckpt)
    trainable = [n for n, p in ck.model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    x = torch.randint(0, ck.config.vocab_size, (2, 24))
    with torch.no_grad():
        unmerged, _ = ck.model(x)
        with adapters_disabled(ck.model):
            base, _ = ck.model(x)
        merged, _ = merge_lora(ck.model)(x)
    assert (unmerged - base).abs().max() > 1e-3  # the adapter does something
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)


def test_adapter_checkpoint_loads_merged_and_merges_to_a_plain_one(chat_ckpt, tmp_path):
    from llm.checkpoint import make_meta, save_checkpoint

    ck = _adapted(chat_ckpt)
    cfg = ck.config.model_copy(update={"adapter": AdapterConfig(rank=4, alpha=8, targets=list("qkvo") + ["gate", "up", "down"])})
    save_checkpoint(tmp_path / "ad", ck.model, cfg, ck.tokenizer, make_meta("sft"))
    assert (tmp_path / "ad" / "adapter.safetensors").exists()
    x = torch.randint(0, cfg.vocab_size, (1, 16))
    with torch.no_grad():
        want, _ = ck.model(x)
        got, _ = load_checkpoint(tmp_path / "ad").model(x)  # loaders apply the adapter
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    merged = merge_checkpoint(tmp_path / "ad", tmp_path / "plain")
    assert load_config(merged).adapter is None and not (merged / "adapter.safetensors").exists()
    with torch.no_grad():
        plain, _ = load_checkpoint(merged).model(x)
    torch.testing.assert_close(plain, want, atol=1e-5, rtol=1e-5)


def _llm(*args):
    return subprocess.run([sys.executable, "-m", "llm", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--lora-rank", "0"], "--lora-rank must be >= 1"),
        (["--format", "chatml"], "unknown SFT format 'chatml'"),
        (["--data", "{notes}"], "expected a .json, .jsonl or .parquet file"),
    ],
)
def test_sft_bad_input_is_one_line_and_writes_nothing(chat_ckpt, tmp_path, args, needle):
    notes = tmp_path / "notes.txt"
    notes.write_text("not rows")
    good = tmp_path / "rows.jsonl"
    good.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    argv = ["train", "sft", "--model", str(chat_ckpt), "--data", str(good), "--out", str(tmp_path / "out"),
            "run.dir=" + str(tmp_path / "runs"), "train.seq_len=128"]
    argv += [a.replace("{notes}", str(notes)) for a in args]
    r = _llm(*argv)
    assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_quantized_checkpoint_is_refused_for_finetuning(chat_ckpt, tmp_path):
    q = _llm("quantize", str(chat_ckpt), "--bits", "8", "--out", str(tmp_path / "q8"))
    assert q.returncode == 0, q.stderr
    rows = tmp_path / "pairs.jsonl"
    rows.write_text('{"prompt": [{"role": "user", "content": "a"}], "chosen": "b", "rejected": "c"}\n')
    r = _llm("train", "dpo", "--model", str(tmp_path / "q8"), "--data", str(rows), "--out", str(tmp_path / "out"),
             "run.dir=" + str(tmp_path / "runs"), "train.seq_len=128")
    assert r.returncode != 0 and "fine-tune its float parent" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_dpo_file_without_chosen_is_one_line(chat_ckpt, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": [{"role": "user", "content": "a"}], "answer": "b"}\n')
    r = _llm("train", "dpo", "--model", str(chat_ckpt), "--data", str(rows), "--out", str(tmp_path / "out"),
             "run.dir=" + str(tmp_path / "runs"))
    assert r.returncode != 0 and 'needs "chosen" and "rejected"' in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
