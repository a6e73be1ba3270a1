"""Scaling-law fitting recovers known laws; IsoFLOP vertices land where the parabola says."""

import math

import pytest

from llm.experiments.scaling_fit import HOFFMANN_2022, LossLaw, fit_loss_law, isoflop_minimum, optimal_allocation


def test_fit_recovers_a_known_law():
    law = LossLaw(E=1.8, A=300.0, B=500.0, alpha=0.4, beta=0.3)
    grid = [(n, d) for n in (1e5, 3e5, 1e6, 3e6, 1e7) for d in (1e6, 1e7, 1e8, 1e9)]
    fit = fit_loss_law([n for n, _ in grid], [d for _, d in grid], [law(n, d) for n, d in grid])
    for n, d in grid:
        assert fit(n, d) == pytest.approx(law(n, d), rel=1e-3)
    assert fit.alpha == pytest.approx(0.4, abs=0.05) and fit.beta == pytest.approx(0.3, abs=0.05)


def test_optimal_allocation_minimises_the_law_at_fixed_compute():
    compute = 5.76e23  # Chinchilla's own budget
    n, d = optimal_allocation(HOFFMANN_2022, compute)
    assert d == pytest.approx(compute / (6 * n))
    assert 1e10 < n < 1e11  # tens of billions of parameters, as in the paper
    for factor in (0.5, 0.8, 1.25, 2.0):  # any other split of the same compute does worse
        assert HOFFMANN_2022(n * factor, d / factor) > HOFFMANN_2022(n, d)


def test_isoflop_vertex():
    ns = [1e5, 3e5, 1e6, 3e6, 1e7]
    losses = [(math.log(n) - math.log(1e6)) ** 2 * 0.1 + 3.0 for n in ns]
    m = isoflop_minimum(ns, losses)
    assert m.n_opt == pytest.approx(1e6, rel=1e-6) and m.loss == pytest.approx(3.0) and not m.at_edge
    edge = isoflop_minimum(ns, [5, 4, 3, 2, 1])  # still falling at the largest size
    assert edge.at_edge and edge.n_opt == pytest.approx(1e7)
