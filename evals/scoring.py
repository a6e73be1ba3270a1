"""The statistics behind every score the harness prints.

Pure functions over counts; nothing here knows about tasks, runs or the database.

- `wilson_interval`: 95% score interval for a success rate (Wilson, 1927) — unlike the
  normal approximation it stays inside [0, 1] and is sensible at 0/n and n/n.
- `pass_at_k`: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language
  Models Trained on Code", §2.1): 1 - C(n-c, k) / C(n, k).
- `pass_hat_k`: tau-bench's pass^k (Yao et al. 2024, §3): C(c, k) / C(n, k), the chance
  that k independent attempts *all* succeed — a reliability score.
- `sign_test_p`: exact two-sided binomial p-value on discordant pairs; with one epoch per
  task it is exactly McNemar's exact test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["wilson_interval", "pass_at_k", "pass_hat_k", "mean_over_tasks", "sign_test_p"]

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval for `successes` out of `n`; (0, 1) when n == 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be within 0..n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k attempts drawn from n (c correct) succeeds."""
    _check_counts(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Probability that all of k attempts drawn from n (c correct) succeed."""
    _check_counts(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def mean_over_tasks(counts: Iterable[tuple[int, int]], k: int, estimator) -> float | None:
    """Mean of `estimator(n, c, k)` over tasks given as (n, c); tasks with n < k are skipped.

    Returns None when no task has at least k attempts.
    """
    values = [estimator(n, c, k) for n, c in counts if n >= k]
    return sum(values) / len(values) if values else None


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test: p-value of a `wins` vs `losses` split under p = 1/2.

    Ties are the caller's to drop. With no discordant pair there is no evidence: p = 1.
    """
    if wins < 0 or losses < 0:
        raise ValueError("wins and losses must be non-negative")
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _check_counts(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
