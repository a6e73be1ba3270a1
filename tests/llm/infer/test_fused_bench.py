"""`llm bench decode --vs-llamacpp GGUF`: the peer is optional, and its absence is a one-line error before any run."""

import sys

import pytest

from llm.errors import InferenceError
from llm.infer.bench import bench_decode


def test_vs_llamacpp_without_the_package_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp raises ImportError
    with pytest.raises(InferenceError, match=r"pip install 'iclaw-llm\[bench\]'"):
        bench_decode("no-such-model", vs_llamacpp=str(tmp_path / "m.gguf"))


def test_vs_llamacpp_needs_an_existing_gguf(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", type(sys)("llama_cpp"))
    with pytest.raises(InferenceError, match="not an existing .gguf"):
        bench_decode("no-such-model", vs_llamacpp=str(tmp_path / "missing.gguf"))
