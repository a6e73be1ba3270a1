"""Learning-rate schedules: warmup, peak, decay shape and floor."""

import pytest

from llm.train.config import TrainSection
from llm.train.schedule import lr_at


def lrs(schedule: str, total: int = 100, **kw) -> list[float]:
    cfg = TrainSection(schedule=schedule, lr=1.0, warmup_steps=10, min_lr_ratio=0.1, **kw)
    return [lr_at(s, total, cfg) for s in range(total)]


def test_warmup_is_linear_up_to_the_peak():
    for name in ("cosine", "wsd", "constant"):
        values = lrs(name)
        assert values[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])


def test_cosine_decays_monotonically_to_the_floor():
    values = lrs("cosine")
    tail = values[10:]
    assert all(a >= b for a, b in zip(tail, tail[1:]))
    assert values[10] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1, abs=1e-3)
    assert values[55] == pytest.approx(0.55, abs=0.01)  # half-way: midpoint between peak and floor


def test_wsd_is_stable_then_decays_linearly_in_the_last_fraction():
    values = lrs("wsd", decay_fraction=0.2)
    assert all(v == 1.0 for v in values[10:80])
    decay = values[80:]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert values[-1] == pytest.approx(0.1)


def test_constant_stays_at_peak():
    assert set(lrs("constant")[10:]) == {1.0}
