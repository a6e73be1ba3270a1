"""Fixtures for the server tests (helpers in `serve_testkit`)."""

from __future__ import annotations

import pytest
from serve_testkit import make_tool_checkpoint, one_torch_thread, running_server

from llm.checkpoint import load_checkpoint


@pytest.fixture(scope="module", autouse=True)
def _one_thread_per_module():
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def nano_ckpt(tmp_path_factory):
    return make_tool_checkpoint(tmp_path_factory.mktemp("ckpt") / "nano-tools")


@pytest.fixture(scope="session")
def nano(nano_ckpt):
    return load_checkpoint(nano_ckpt)


@pytest.fixture(scope="module")
def server(nano):
    with running_server(nano, max_batch=8, kv_blocks=128, block_size=8) as s:
        yield s


@pytest.fixture
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="unused", max_retries=0, timeout=60)
