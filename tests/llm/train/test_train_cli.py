"""`llm train pretrain` and friends from the command line: one-line errors, help with examples."""

import pytest

from llm.cli import main


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--data", "/no/such/dir"], "data directory /no/such/dir does not exist; create it with `llm data prepare"),
        (["train.lrr=1"], "train.lrr: unknown key (did you mean lr?) (valid: lr,"),
        (["model.vocab_size=300"], "tokenizer.json has 512 tokens but model.vocab_size is 300"),
        (["train.seq_len=4096"], "train.seq_len=4096 exceeds model.max_seq_len=64"),
    ],
)
def test_bad_input_is_one_line(capsys, tiny_overrides, args, needle):
    code, out, err = run(capsys, "train", "pretrain", *tiny_overrides, *args)
    assert code == 1 and needle in err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_pretrain_prints_the_checkpoint(capsys, tiny_overrides, tmp_path):
    main(["train", "pretrain", *tiny_overrides, "--max-steps", "3", "--name", "cli"])
    out = capsys.readouterr().out
    assert f"{tmp_path / 'runs' / 'cli' / 'checkpoints' / 'final'}: 3 steps" in out and "val bpb" in out


def test_help_shows_examples():
    from typer.testing import CliRunner

    from llm.cli import app

    for argv in (
        ["train", "pretrain"],
        ["data", "prepare"],
        ["experiment"],
        ["plot"],
        ["bench", "train"],
        ["bench", "matmul"],
    ):
        result = CliRunner().invoke(app, [*argv, "--help"])
        assert result.exit_code == 0 and "Example: llm " in result.output, argv


def test_wandb_flag_without_the_package_is_one_line(capsys, tiny_overrides):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    code, _, err = run(capsys, "train", "pretrain", *tiny_overrides, "--wandb")
    assert code == 1 and "needs the wandb package: pip install wandb" in err and err.count("\n") == 1
