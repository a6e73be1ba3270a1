"""`llm --help` and every command's help: fast (no heavy import), an example everywhere, `-h`,
full option names at 80 columns, no value type on flags."""

import json
import os
import subprocess
import sys

import typer

from llm.cli import app, keep_example_lines

# What a help screen must never load: each costs from 0.1 s (yaml) to seconds (torch).
HEAVY = ("torch", "numpy", "yaml", "safetensors", "tiktoken", "fastapi", "uvicorn", "transformers", "datasets", "rich")


def _command_paths(command=None, path=()):
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_help_screens_and_typos_import_nothing_heavy():
    """The import set, not the time: every help screen and a typo, in one fresh interpreter."""
    argvs = [[*p, "--help"] for p, _ in _command_paths()] + [["no-such-command"], ["train", "pretrian"]]
    code = (
        "import contextlib, io, json, sys\n"
        "from llm.cli import main\n"
        f"for argv in {argvs!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_every_group_and_command_shows_an_example():
    missing = [" ".join(("llm", *p)) for p, c in _command_paths() if "Example" not in (c.help or "")]
    assert missing == []


def test_examples_are_printed_as_written(capsys):
    command = typer.main.get_command(app)
    keep_example_lines(command)
    help_text = command.commands["generate"].get_help(typer.Context(command.commands["generate"], info_name="generate"))
    long_example = 'llm generate smollm2-135m-instruct -p "def fib(n):" --temperature 0.7 --top-k 40'
    assert long_example in help_text  # one line, not rewrapped


def run_llm(*args, columns="80"):
    env = {**os.environ, "COLUMNS": columns}
    return subprocess.run([sys.executable, "-m", "llm", *args], capture_output=True, text=True, env=env)


def test_short_help_option_everywhere():
    for args in (("-h",), ("train", "-h"), ("bench", "serve", "-h"), ("data", "prepare", "-h"), ("eval", "ppl", "-h")):
        out = run_llm(*args)
        assert out.returncode == 0 and "Usage: llm" in out.stdout and "-h, --help" in out.stdout, (args, out.stderr)


def test_option_names_whole_at_80_columns_and_flags_without_a_type():
    out = run_llm("serve", "--help")
    assert out.returncode == 0
    for name in ("--served-model-name", "--num-speculative-tokens", "--max-prefill-tokens", "--prompt-lookup"):
        assert name in out.stdout
    assert "…" not in out.stdout
    assert "<bool>" not in out.stdout
    assert "--prompt-lookup / --no-prompt-lookup" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines() if not line.lstrip().startswith("Example")) <= 80


def test_repeatable_options_name_their_value_not_a_python_type():
    for args in (("generate", "--help"), ("bench", "serve", "--help"), ("tokenizer", "train", "--help")):
        out = run_llm(*args)
        options = [line for line in out.stdout.splitlines() if line.lstrip().startswith("-")]
        assert out.returncode == 0 and options, args
        assert not [line for line in options if "<list[" in line], (args, out.stdout)
