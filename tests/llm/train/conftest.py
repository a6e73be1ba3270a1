"""A tiny prepared corpus and a tiny-model config factory for training tests (one CPU thread each,
so runs are bit-for-bit repeatable and do not fight other processes for cores)."""

from __future__ import annotations

import random

import pytest

from llm.data.prepare import prepare_data, train_tokenizer
from llm.train.config import load_train_config
from posttrain_kit import CALC_TOOL, calc_conversation

TINY_MODEL = [
    "model.vocab_size=512",
    "model.d_model=32",
    "model.n_layers=2",
    "model.n_heads=2",
    "model.n_kv_heads=1",
    "model.ffn_hidden=64",
    "model.max_seq_len=64",
]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("train-data") / "stdlib-json"
    prepare_data("stdlib:json,textwrap", train_tokenizer("stdlib:json,textwrap", 512), out, val_fraction=0.1)
    return out


@pytest.fixture
def tiny_overrides(tiny_data, tmp_path):
    """Overrides for a ~40k-parameter model trained a few dozen steps on `tiny_data`."""
    return [
        *TINY_MODEL,
        f"data.dir={tiny_data}",
        "train.seq_len=32",
        "train.batch_size=4",
        "train.max_steps=12",
        "train.warmup_steps=2",
        "train.lr=3e-3",
        "train.threads=1",
        "train.device=cpu",
        "eval.every=4",
        "eval.sequences=8",
        "checkpoint.every=4",
        f"run.dir={tmp_path / 'runs'}",
        "run.name=tiny",
        "run.log_every=1",
        "run.progress=false",
    ]


@pytest.fixture
def tiny_cfg(tiny_overrides):
    def make(*extra: str):
        return load_train_config(None, [*tiny_overrides, *extra])

    return make


# ---- post-training: a tiny chat model (the conversations live in posttrain_kit.py) ------------

@pytest.fixture(scope="session")
def chat_ckpt(tmp_path_factory):
    """A random-init nano checkpoint whose tokenizer knows ChatML, tool calls and digits."""
    import torch

    from llm.chat_template import render_chat_text
    from llm.checkpoint import make_meta, save_checkpoint
    from llm.config import load_preset
    from llm.model import GPT
    from llm.tokenizer import Tokenizer

    rng = random.Random(0)
    boot = Tokenizer.train(["hello world"], 260)
    texts = [render_chat_text(boot, calc_conversation(rng.randint(2, 99), rng.randint(2, 99))["messages"], [CALC_TOOL])
             for _ in range(30)]
    tok = Tokenizer.train(texts, 600)
    torch.manual_seed(0)
    cfg = load_preset("nano").model_copy(update={"vocab_size": tok.vocab_size, "name": "nano-chat", "max_seq_len": 512})
    path = tmp_path_factory.mktemp("chat") / "base"
    save_checkpoint(path, GPT(cfg), cfg, tok, make_meta("pretrain"))
    return path


@pytest.fixture
def post_overrides(tmp_path):
    return ["train.seq_len=256", "train.threads=1", "train.device=cpu", "run.progress=false",
            f"run.dir={tmp_path / 'runs'}", "train.warmup_steps=2", "eval.every=0", "checkpoint.every=0"]
