import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from llm.checkpoint import is_checkpoint, load_checkpoint, make_meta, save_checkpoint
from llm.config import ModelConfig
from llm.errors import CheckpointError
from llm.model import GPT
from llm.tokenizer import Tokenizer


def tiny_cfg(**kw):
    base = dict(vocab_size=300, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=64, max_seq_len=32)
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(["hello world, the quick brown fox. " * 50], vocab_size=300)


def test_round_trip_identical_logits(tmp_path, tok):
    torch.manual_seed(0)
    cfg = tiny_cfg()
    model = GPT(cfg).eval()
    save_checkpoint(tmp_path / "ck", model, cfg, tok, make_meta("pretrain", steps=3))
    ck = load_checkpoint(tmp_path / "ck")
    idx = torch.randint(0, 300, (1, 10))
    assert torch.equal(model(idx)[0], ck.model(idx)[0])
    assert ck.meta["stage"] == "pretrain" and ck.meta["steps"] == 3
    assert ck.tokenizer.encode("hello") == tok.encode("hello")
    assert ck.model.lm_head.weight is ck.model.tok_emb.weight  # tying survives the round trip


def test_untied_round_trip_and_bf16(tmp_path, tok):
    cfg = tiny_cfg(tie_embeddings=False)
    model = GPT(cfg).eval()
    save_checkpoint(tmp_path / "ck", model, cfg, tok, make_meta("pretrain"))
    ck = load_checkpoint(tmp_path / "ck", dtype="bfloat16")
    assert ck.model.lm_head.weight.dtype == torch.bfloat16
    assert torch.equal(ck.model.lm_head.weight.float(), model.lm_head.weight.bfloat16().float())


def test_refuses_missing_incomplete_and_mismatched(tmp_path, tok):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope")
    cfg = tiny_cfg()
    save_checkpoint(tmp_path / "ck", GPT(cfg), cfg, tok, make_meta("pretrain"))
    os.remove(tmp_path / "ck" / "meta.json")
    with pytest.raises(CheckpointError, match="missing meta.json"):
        load_checkpoint(tmp_path / "ck")
    save_checkpoint(tmp_path / "ck2", GPT(cfg), cfg, tok, make_meta("pretrain"))
    conf = json.loads((tmp_path / "ck2" / "config.json").read_text())
    conf["d_model"] = 64
    (tmp_path / "ck2" / "config.json").write_text(json.dumps(conf))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path / "ck2")
    (tmp_path / "ck2" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: corrupt JSON"):
        load_checkpoint(tmp_path / "ck2")
    save_checkpoint(tmp_path / "ck3", GPT(cfg), cfg, tok, make_meta("pretrain"))
    (tmp_path / "ck3" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ck3")


def test_save_killed_midway_keeps_previous_checkpoint(tmp_path, tok):
    """A writer blocks mid-save; SIGKILL it; the old checkpoint must still load unchanged."""
    tok.save(tmp_path)
    script = textwrap.dedent(
        f"""
        import time, torch
        from pathlib import Path
        from llm.checkpoint import save_checkpoint, make_meta
        from llm.config import ModelConfig
        from llm.model import GPT
        from llm.tokenizer import Tokenizer
        tok = Tokenizer.load(Path({str(tmp_path)!r}))
        cfg = ModelConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=64, max_seq_len=32)
        torch.manual_seed(1)
        save_checkpoint(Path({str(tmp_path / 'ck')!r}), GPT(cfg), cfg, tok, make_meta("pretrain", version=1))
        def stall(path):
            path.write_bytes(b"partial")
            Path({str(tmp_path / 'started')!r}).touch()
            time.sleep(60)
        torch.manual_seed(2)
        save_checkpoint(Path({str(tmp_path / 'ck')!r}), GPT(cfg), cfg, tok, make_meta("pretrain", version=2),
                        extra_files={{"train_state.pt": stall}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, "writer exited early"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.meta["version"] == 1
    assert not (tmp_path / "ck" / "train_state.pt").exists()


def test_interrupted_swap_is_recovered(tmp_path, tok):
    cfg = tiny_cfg()
    save_checkpoint(tmp_path / "ck", GPT(cfg), cfg, tok, make_meta("pretrain", version=1))
    os.rename(tmp_path / "ck", tmp_path / ".ck.old")  # died between the two renames
    assert is_checkpoint(tmp_path / "ck")
    assert load_checkpoint(tmp_path / "ck").meta["version"] == 1
