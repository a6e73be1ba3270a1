"""A tiny prepared corpus for experiment tests."""

import pytest

from llm.data.prepare import prepare_data, train_tokenizer


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp-data") / "stdlib-json"
    prepare_data("stdlib:json,textwrap", train_tokenizer("stdlib:json,textwrap", 512), out, val_fraction=0.1)
    return out
