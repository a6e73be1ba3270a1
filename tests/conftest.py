"""Shared fixtures: tiny models on CPU, and the pulled SmolLM2 for `model`-marked tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2_path():
    """Path of the pulled SmolLM2-135M-Instruct checkpoint (`make test` pulls it first)."""
    from llm.errors import ModelNotFound
    from llm.hub import resolve_model

    try:
        return resolve_model("smollm2-135m-instruct")
    except ModelNotFound as exc:
        pytest.skip(f"SmolLM2 not in the model cache ({exc}); run `llm pull smollm2-135m-instruct`")


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    from llm.checkpoint import load_checkpoint

    return load_checkpoint(smollm2_path)
