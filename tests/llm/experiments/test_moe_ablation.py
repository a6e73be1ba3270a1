"""`llm experiment moe-ablation` at a tiny budget: five runs, report.md with its table and plots."""

import csv

from llm.experiments import EXPERIMENTS, ExperimentContext
from llm.experiments.moe_ablation import ABLATION_RUNS


def test_moe_ablation_smoke(tiny_data, tmp_path):
    ctx = ExperimentContext(
        name="moe-ablation", data=tiny_data, out=tmp_path / "moe", budget_min=0.02, batch_size=4, seq_len=32,
        threads=1, log=lambda m: None,
    )
    report = EXPERIMENTS["moe-ablation"](ctx)
    text = report.read_text()
    assert "Reproduce: `llm experiment moe-ablation" in text and "aux-free vs aux loss" in text
    rows = {r["run"]: r for r in csv.DictReader(open(report.parent / "runs.csv"))}
    assert set(rows) == set(ABLATION_RUNS)
    assert rows["dense"]["max_vio"] == "" and float(rows["top2-none"]["max_vio"]) >= 0
    active = {name: int(r["params_active"]) for name, r in rows.items()}
    assert active["top2-aux_free"] == active["top4-aux_free"] and abs(active["top2-aux_free"] - active["dense"]) < 2_000
    assert int(rows["top2-aux_free"]["params_total"]) > 2 * active["dense"] // 2
    for png in ("curves.png", "maxvio.png", "experts_top2-aux_free.png"):
        assert (report.parent / png).read_bytes()[:4] == b"\x89PNG" and f"({png})" in text
