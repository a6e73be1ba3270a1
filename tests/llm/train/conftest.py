"""A tiny prepared corpus and a tiny-model config factory for training tests (one CPU thread each,
so runs are bit-for-bit repeatable and do not fight other processes for cores)."""

from __future__ import annotations

import pytest

from llm.data.prepare import prepare_data, train_tokenizer
from llm.train.config import load_train_config

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
