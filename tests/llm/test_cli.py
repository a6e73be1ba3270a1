"""The `llm` command: help with examples, one-line errors, no tracebacks."""

import os
import subprocess
import sys

import pytest


def run_llm(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "llm", *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})}
    )


def test_help_lists_commands_with_example():
    out = run_llm("--help")
    assert out.returncode == 0
    for cmd in ("pull", "generate", "import", "tokenizer", "bench", "data", "train", "serve", "quantize", "eval"):
        assert cmd in out.stdout
    assert "Example:" in out.stdout
    gen = run_llm("generate", "--help")
    assert "Examples:" in gen.stdout and "llm generate smollm2-135m-instruct --chat" in gen.stdout
    for flag in ("--top-k", "--min-p", "--repetition-penalty", "--stop"):
        assert flag in gen.stdout


def test_usage_error_is_a_message_not_a_traceback():
    out = run_llm("no-such-command")
    assert out.returncode == 2
    assert "No such command" in out.stderr and "Traceback" not in out.stderr


def test_tokenizer_train_reads_data_sources(tmp_path):
    out = run_llm("tokenizer", "train", "--input", "stdlib:textwrap", "--vocab-size", "300", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "tokenizer.json").is_file()
    bad = run_llm("tokenizer", "train", "--input", "missing.txt", "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and "no such file or folder" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (("pull", "no-such-model"), "known models: smollm2-135m-instruct"),
        (("generate", "no-such-model", "--chat", "hi"), "known models: smollm2-135m-instruct"),
        (("generate", "x"), "give exactly one of --prompt TEXT or --chat TEXT"),
        (("import", "gguf", "/nonexistent.gguf", "--out", "/tmp/never"), "/nonexistent.gguf: no such GGUF file"),
    ],
)
def test_bad_input_is_one_line_error(args, needle, tmp_path):
    out = run_llm(*args, env={"LLM_HOME": str(tmp_path)})
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], out.stderr


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text("{}")
    out = run_llm("generate", str(tmp_path / "ck"), "--prompt", "hi")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "incomplete checkpoint, missing model.safetensors" in out.stderr


def test_tokenizer_train_and_generate_from_a_fresh_checkpoint(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 200 + "def f(x):\n    return x + 1\n" * 50)
    out = run_llm("tokenizer", "train", "--input", str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "tok"))
    assert out.returncode == 0, out.stderr
    from llm.checkpoint import make_meta, save_checkpoint
    from llm.config import load_preset
    from llm.model import GPT
    from llm.tokenizer import Tokenizer

    tok = Tokenizer.load(tmp_path / "tok")
    cfg = load_preset("nano").model_copy(update={"vocab_size": tok.vocab_size})
    save_checkpoint(tmp_path / "ck", GPT(cfg), cfg, tok, make_meta("pretrain"))
    gen = run_llm("generate", str(tmp_path / "ck"), "--prompt", "the cat", "--max-tokens", "5", "--seed", "1",
                  "--temperature", "1.0")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.strip() != ""
