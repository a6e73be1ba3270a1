import math

import pytest

from evals.scoring import mean_over_tasks, pass_at_k, pass_hat_k, sign_test_p, wilson_interval


def test_wilson_interval_matches_hand_computation():
    # 8/10, z = 1.96: centre 0.7167, half-width 0.2266 (worked out by hand).
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_edges_stay_inside_unit_interval():
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 1
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@pytest.mark.parametrize(
    "n, c, k, at, hat",
    [
        (5, 2, 2, 1 - 3 / 10, 1 / 10),  # 1 - C(3,2)/C(5,2); C(2,2)/C(5,2)
        (4, 1, 2, 1 - 3 / 6, 0.0),
        (3, 3, 3, 1.0, 1.0),
        (4, 0, 1, 0.0, 0.0),
        (10, 3, 1, 0.3, 0.3),  # k = 1: both are the plain success rate
        (5, 4, 2, 1.0, 6 / 10),  # n - c < k: at least one success is certain
    ],
)
def test_pass_at_k_and_pass_hat_k_hand_computed(n, c, k, at, hat):
    assert pass_at_k(n, c, k) == pytest.approx(at)
    assert pass_hat_k(n, c, k) == pytest.approx(hat)


def test_pass_at_k_agrees_with_brute_force_over_subsets():
    from itertools import combinations

    outcomes = [1, 0, 1, 0, 0, 1]
    n, c = len(outcomes), sum(outcomes)
    for k in range(1, n + 1):
        subsets = list(combinations(outcomes, k))
        any_ok = sum(any(s) for s in subsets) / len(subsets)
        all_ok = sum(all(s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(any_ok)
        assert pass_hat_k(n, c, k) == pytest.approx(all_ok)


def test_mean_over_tasks_skips_tasks_with_too_few_attempts():
    counts = [(5, 2), (4, 1), (1, 1)]
    assert mean_over_tasks(counts, 2, pass_at_k) == pytest.approx((0.7 + 0.5) / 2)
    assert mean_over_tasks(counts, 2, pass_hat_k) == pytest.approx((0.1 + 0.0) / 2)
    assert mean_over_tasks([(1, 1)], 2, pass_at_k) is None


def test_invalid_counts_raise():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_hat_k(3, 1, 4)


@pytest.mark.parametrize(
    "wins, losses, p",
    [
        (8, 2, 2 * (1 + 10 + 45) / 1024),
        (10, 0, 2 / 1024),
        (0, 10, 2 / 1024),
        (3, 3, 1.0),
        (0, 0, 1.0),
        (1, 0, 1.0),
    ],
)
def test_sign_test_exact_p_values(wins, losses, p):
    assert sign_test_p(wins, losses) == pytest.approx(p)
    assert math.isclose(sign_test_p(wins, losses), sign_test_p(losses, wins))
