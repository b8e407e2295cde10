"""P(A>B): how often a run of one row beats a run of another (Bouthillier et al. 2021), with a bootstrap interval."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from regbench.report.stats import FEW_RUNS, LEVEL

RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed, so that a table made twice from the same runs is the same


@dataclass(frozen=True)
class Superiority:
    """The probability that a run of A beats a run of B, and its bootstrap interval (None with < 2 runs on a side)."""
    estimate: float
    ci: tuple[float, float] | None
    undefined: str | None = None    # FEW_RUNS when ci is None


def _wins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[i, j]: 1 when a[i] beats b[j], ½ for a tie, else 0."""
    return (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])


def _counts(draws: np.ndarray, n: int) -> np.ndarray:
    """[r, i]: how many times resample r drew run i."""
    rows = np.arange(draws.shape[0])[:, None] * n
    return np.bincount((rows + draws).ravel(), minlength=draws.shape[0] * n).reshape(draws.shape[0], n)


def superiority(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True, level: float = LEVEL,
                resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Superiority:
    """The Mann–Whitney estimate U / (n_a·n_b) of P(a run of a beats a run of b), ties counting ½, with the percentile
    interval of `resamples` bootstrap resamples (the runs of each side drawn with replacement, a's then b's)."""
    sign = 1.0 if higher_is_better else -1.0
    wins = _wins(sign * np.asarray(a, dtype=float), sign * np.asarray(b, dtype=float))
    estimate = float(wins.mean())
    if len(a) < 2 or len(b) < 2:
        return Superiority(estimate, None, FEW_RUNS)
    rng = np.random.default_rng(seed)
    draws_a = rng.integers(0, len(a), size=(resamples, len(a)))
    draws_b = rng.integers(0, len(b), size=(resamples, len(b)))
    counts_a, counts_b = _counts(draws_a, len(a)), _counts(draws_b, len(b))
    boot = ((counts_a @ wins) * counts_b).sum(axis=1) / (len(a) * len(b))
    low, high = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return Superiority(estimate, (float(low), float(high)))
