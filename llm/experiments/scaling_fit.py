"""Scaling-law fits for the Chinchilla experiment (Hoffmann et al. 2022, "Training
Compute-Optimal Large Language Models").

- `fit_loss_law`: L(N, D) = E + A / N^alpha + B / D^beta, fitted as in the paper's
  approach 3 (section 3.3, appendix D.2): Huber loss (delta 1e-3) between the predicted and
  observed log loss, with the prediction written as a log-sum-exp of (a - alpha log N,
  b - beta log D, e), minimised by L-BFGS from a grid of starting points.
- `isoflop_minimum`: approach 2 (section 3.2): at one compute budget, a parabola in log N
  through the final losses, whose vertex is the compute-optimal model size.
- `optimal_allocation`: the N and D minimising the fitted law at compute C = 6 N D
  (appendix D.2, eq. 4).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LossLaw", "HOFFMANN_2022", "fit_loss_law", "isoflop_minimum", "optimal_allocation", "IsoFlopMin"]


@dataclass(frozen=True)
class LossLaw:
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __call__(self, n: float, d: float) -> float:
        return self.E + self.A / n**self.alpha + self.B / d**self.beta


HOFFMANN_2022 = LossLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def _huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    a = x.abs()
    return torch.where(a <= delta, 0.5 * x**2, delta * (a - 0.5 * delta))


def fit_loss_law(n: list[float], d: list[float], loss: list[float], delta: float = 1e-3) -> LossLaw:
    """Best Huber fit of the Chinchilla law from a grid of initialisations.

    All starting points descend together (batched Adam), then the best few are polished with
    L-BFGS: the same optimum as L-BFGS from every start, at a fraction of the time.
    """
    log_n = torch.tensor(np.log(n), dtype=torch.float64)  # (M,)
    log_d = torch.tensor(np.log(d), dtype=torch.float64)
    log_l = torch.tensor(np.log(loss), dtype=torch.float64)

    def objective(p: torch.Tensor) -> torch.Tensor:
        """p (K, 5) = (a, b, e, alpha, beta) per start -> (K,) summed Huber loss."""
        a, b, e, alpha, beta = p.unbind(-1)  # (K,) each
        terms = torch.stack(
            [a[:, None] - alpha[:, None] * log_n, b[:, None] - beta[:, None] * log_d, e[:, None].expand(-1, len(log_n))]
        )  # (3, K, M)
        return _huber(torch.logsumexp(terms, dim=0) - log_l, delta).sum(-1)

    grid = torch.tensor(
        list(itertools.product((0.0, 5.0, 10.0), (0.0, 5.0, 10.0), (-1.0, 0.0, 1.0), (0.2, 0.5, 1.0), (0.2, 0.5, 1.0))),
        dtype=torch.float64,
    )  # (243, 5)
    p = grid.clone().requires_grad_(True)
    adam = torch.optim.Adam([p], lr=0.1)
    for _ in range(300):
        adam.zero_grad()
        objective(p).sum().backward()
        adam.step()
    with torch.no_grad():
        values = objective(p)
    values = torch.where(torch.isfinite(values), values, torch.full_like(values, math.inf))
    best, best_val = None, math.inf
    for k in values.argsort()[:3].tolist():
        q = p[k : k + 1].detach().clone().requires_grad_(True)
        lbfgs = torch.optim.LBFGS([q], lr=1.0, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15)

        def closure(q: torch.Tensor = q, opt: torch.optim.LBFGS = lbfgs) -> torch.Tensor:
            opt.zero_grad()
            value = objective(q).sum()
            value.backward()
            return value

        lbfgs.step(closure)
        with torch.no_grad():
            value = float(objective(q).sum())
        if math.isfinite(value) and value < best_val:
            best, best_val = q.detach()[0], value
    assert best is not None
    a, b, e, alpha, beta = best.tolist()
    return LossLaw(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta)


def optimal_allocation(law: LossLaw, compute: float) -> tuple[float, float]:
    """(N_opt, D_opt) minimising `law` subject to 6 N D = compute."""
    if law.alpha <= 0 or law.beta <= 0:
        return math.nan, math.nan
    g = (law.alpha * law.A / (law.beta * law.B)) ** (1 / (law.alpha + law.beta))
    n_opt = g * (compute / 6) ** (law.beta / (law.alpha + law.beta))
    return n_opt, compute / (6 * n_opt)


@dataclass(frozen=True)
class IsoFlopMin:
    n_opt: float
    loss: float
    coeffs: tuple[float, float, float]  # parabola in log N: c2 x^2 + c1 x + c0
    at_edge: bool  # the vertex fell outside the sampled sizes (or the curve opens downwards)


def isoflop_minimum(n: list[float], loss: list[float]) -> IsoFlopMin:
    """Vertex of a parabola fitted to (log N, loss) at one compute level (needs >= 3 sizes)."""
    x = np.log(np.asarray(n, dtype=np.float64))
    y = np.asarray(loss, dtype=np.float64)
    c2, c1, c0 = np.polyfit(x, y, 2)
    if c2 > 0:
        x_opt = -c1 / (2 * c2)
        at_edge = not (x.min() <= x_opt <= x.max())
        x_opt = float(np.clip(x_opt, x.min(), x.max()))
    else:
        x_opt, at_edge = float(x[np.argmin(y)]), True
    return IsoFlopMin(math.exp(x_opt), float(np.polyval((c2, c1, c0), x_opt)), (c2, c1, c0), at_edge)
