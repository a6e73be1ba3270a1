"""Every experiment runs at a tiny budget and writes report.md, PNG plots and CSV tables."""

import csv
import math
import re

import numpy as np
import pytest

from llm.experiments import EXPERIMENTS, ExperimentContext


@pytest.fixture(scope="module")
def reports(tiny_data, tmp_path_factory):
    """Each experiment run once at a tiny budget; name -> report.md path."""
    out = tmp_path_factory.mktemp("reports")
    cache = {}

    def get(name):
        if name not in cache:
            ctx = ExperimentContext(
                name=name,
                data=tiny_data,
                out=out / name,
                budget_min=0.05,
                batch_size=4,
                seq_len=32,
                threads=1,
                log=lambda m: None,
            )
            cache[name] = EXPERIMENTS[name](ctx)
        return cache[name]

    return get


@pytest.mark.parametrize(
    "name,files",
    [
        ("chinchilla", ["runs.csv", "isoflop.csv", "fit.csv", "isoflop.png", "loss_law.png"]),
        ("lr-sweep", ["lr_sweep.csv", "lr_sweep.png", "curves.png"]),
        ("accum-vs-batch", ["curves.csv", "curves.png"]),
        ("precision", ["curves.csv", "curves.png"]),
    ],
)
def test_experiment_writes_its_files(name, files, reports):
    report = reports(name)
    folder = report.parent
    assert report.name == "report.md" and folder.name == name
    text = report.read_text()
    assert text.startswith("# ") and "Reproduce: `llm experiment " + name in text
    for f in files:
        path = folder / f
        assert path.exists() and path.stat().st_size > 0, f
        if f.endswith(".png"):
            assert path.read_bytes()[:4] == b"\x89PNG"
            assert f"({f})" in text, f"{f} not linked from report.md"
    rows = list(csv.DictReader(open(folder / files[0])))
    assert rows


def isoflop_tokens_per_param(rows: list[dict]) -> list[float]:
    """Chinchilla approach 2, recomputed from runs.csv: per compute level, the vertex N_opt of a
    parabola through (log N, val loss) (clipped to the sampled sizes), D_opt = C / 6 N_opt."""
    ratios = []
    for level in sorted({r["level"] for r in rows}):
        runs = [r for r in rows if r["level"] == level]
        x = np.log([float(r["params"]) for r in runs])
        y = np.array([float(r["val_loss"]) for r in runs])
        c2, c1, _ = np.polyfit(x, y, 2)
        x_opt = float(np.clip(-c1 / (2 * c2), x.min(), x.max())) if c2 > 0 else float(x[np.argmin(y)])
        n_opt = math.exp(x_opt)
        ratios.append(float(runs[0]["target_compute_flops"]) / (6 * n_opt) / n_opt)
    return ratios


def test_chinchilla_answers_the_question(reports):
    report = reports("chinchilla")
    text = report.read_text()
    rows = list(csv.DictReader(open(report.parent / "runs.csv")))
    assert len(rows) == 6 and len({r["shape"] for r in rows}) == 3
    # at one compute level, bigger models get fewer tokens
    level0 = sorted((r for r in rows if r["level"] == "0"), key=lambda r: int(r["params"]))
    assert [int(r["tokens"]) for r in level0] == sorted((int(r["tokens"]) for r in level0), reverse=True)
    # The ratio itself: the number the report states is the median IsoFLOP tokens/param of these runs.
    ratios = isoflop_tokens_per_param(rows)
    iso = list(csv.DictReader(open(report.parent / "isoflop.csv")))
    assert [float(r["tokens_per_param"]) for r in iso] == pytest.approx(ratios, rel=1e-6)
    stated = re.search(r"Compute-optimal tokens per parameter found here: \*\*([^*]+)\*\*", text)
    assert stated, text
    assert float(stated.group(1).replace(",", "")) == pytest.approx(float(np.median(ratios)), rel=5e-3)
    assert all(r > 0 and math.isfinite(r) for r in ratios)


def test_accum_vs_batch_curves_match(reports):
    rows = list(csv.DictReader(open(reports("accum-vs-batch").parent / "curves.csv")))
    assert len(rows) >= 10 and max(float(r["abs_diff"]) for r in rows) < 1e-3
