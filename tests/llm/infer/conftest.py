"""Tiny models, a byte-level tokenizer and small checkpoints for the inference tests."""

from __future__ import annotations

import pytest
import torch

from llm.checkpoint import make_meta, save_checkpoint
from llm.config import ModelConfig
from llm.model import GPT
from llm.tokenizer import Tokenizer


def tiny_config(**overrides) -> ModelConfig:
    base = dict(vocab_size=300, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=128, max_seq_len=128)
    base.update(overrides)
    return ModelConfig(**base)


def tiny_model(seed: int = 0, sharp: float = 1.0, **overrides) -> GPT:
    """A random GPT with an untied head scaled by 5 * `sharp`, so greedy outputs vary and are confident.

    (A random model with a tied head mostly repeats its last input token.)
    """
    torch.manual_seed(seed)
    overrides.setdefault("tie_embeddings", False)
    model = GPT(tiny_config(**overrides)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(5 * sharp)
    return model


def byte_tokenizer() -> Tokenizer:
    """One token per byte (so characters and stop strings split across tokens) plus ChatML specials."""
    ranks = {bytes([i]): i for i in range(256)}
    special = {"<|endoftext|>": 256, "<|im_start|>": 257, "<|im_end|>": 258}
    return Tokenizer(r"""[\s\S]""", ranks, special, name="bytes")


@pytest.fixture
def tokenizer() -> Tokenizer:
    return byte_tokenizer()


@pytest.fixture
def make_model():
    """Factory: make_model(seed=0, sharp=1.0, **config overrides) -> a random tiny GPT."""
    return tiny_model


@pytest.fixture
def nano_checkpoint(tmp_path):
    """A saved random `nano`-shaped checkpoint with the byte tokenizer."""
    model = tiny_model(seed=1, vocab_size=512, d_model=128, n_layers=2, n_heads=4, ffn_hidden=256, max_seq_len=256, tie_embeddings=True)
    return save_checkpoint(tmp_path / "nano", model, model.config, byte_tokenizer(), make_meta("pretrain"))
