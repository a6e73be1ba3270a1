"""`llm plot`: a PNG of loss and LR against tokens for one or more runs."""

import pytest

from llm.errors import DataError
from llm.train.plot import plot_runs
from llm.train.pretrain import pretrain


def test_plot_two_runs(tiny_cfg, tmp_path):
    a = pretrain(tiny_cfg("run.name=a")).run_dir
    b = pretrain(tiny_cfg("run.name=b", "train.lr=1e-2")).run_dir
    out = plot_runs([a, b], tmp_path / "plots" / "loss.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    with pytest.raises(DataError, match="not a run directory"):
        plot_runs([tmp_path], tmp_path / "x.png")
