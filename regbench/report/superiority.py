"""P(A>B): how often a run of one row beats a run of another (Bouthillier et al. 2021), with Newcombe's (2006) score
interval, which keeps its coverage with few runs and at 0 and 1 where a bootstrap collapses to a point."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize, stats

from regbench.report.stats import FEW_RUNS, LEVEL


@dataclass(frozen=True)
class Superiority:
    """The probability that a run of A beats a run of B, and its interval (None with < 2 runs on a side)."""
    estimate: float
    ci: tuple[float, float] | None
    undefined: str | None = None    # FEW_RUNS when ci is None


def wins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[i, j]: 1 when a[i] beats b[j], ½ for a tie, else 0."""
    return (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])


def variance(theta: float, m: int, n: int) -> float:
    """Newcombe's (2006, Part 2) Method 5 variance of the Mann–Whitney estimate at `theta`: Hanley and McNeil's
    θ(1−θ)/(mn) · [1 + (m−1)(1−θ)/(2−θ) + (n−1)θ/(1+θ)] with m−1 and n−1 both replaced by N* = (m+n)/2 − 1."""
    star = (m + n) / 2 - 1
    return theta * (1 - theta) / (m * n) * (1 + star * ((1 - theta) / (2 - theta) + theta / (1 + theta)))


def score_interval(estimate: float, m: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Every θ with |estimate − θ| − 1/(2mn) ≤ z·√variance(θ): Newcombe's Method 5 score interval with the
    continuity correction of half a step of U (without it the 3-vs-3 interval misses 0.5 when one side always wins,
    where the exact test's p is 0.10)."""
    z2, half_step = float(stats.norm.ppf(0.5 + level / 2)) ** 2, 0.5 / (m * n)

    def outside(theta: float) -> float:
        return max(abs(estimate - theta) - half_step, 0.0) ** 2 - z2 * variance(theta, m, n)

    low = 0.0 if estimate - half_step <= 0 else float(optimize.brentq(outside, 0.0, estimate - half_step))
    high = 1.0 if estimate + half_step >= 1 else float(optimize.brentq(outside, estimate + half_step, 1.0))
    return low, high


def superiority(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True,
                level: float = LEVEL) -> Superiority:
    """The Mann–Whitney estimate U / (n_a·n_b) of P(a run of a beats a run of b), ties counting ½, with its
    score interval (score_interval)."""
    sign = 1.0 if higher_is_better else -1.0
    estimate = float(wins(sign * np.asarray(a, dtype=float), sign * np.asarray(b, dtype=float)).mean())
    if len(a) < 2 or len(b) < 2:
        return Superiority(estimate, None, FEW_RUNS)
    return Superiority(estimate, score_interval(estimate, len(a), len(b), level))
