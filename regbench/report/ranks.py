"""Rows compared across tasks (datasets, models): each row's rank per task, the Friedman test of the mean ranks and
the Nemenyi critical difference (Demšar 2006), and rliable's aggregate probability of improvement with its stratified
bootstrap interval (Agarwal et al. 2021)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from regbench.report.stats import LEVEL
from regbench.report.superiority import wins

RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed, so that a report made twice from the same runs is the same


@dataclass(frozen=True)
class Friedman:
    """The Friedman statistic of k rows' ranks over n tasks (ties corrected), its p (χ², k − 1 df) and the rows'
    mean ranks (1 = best)."""
    statistic: float
    p: float
    mean_ranks: list[float]


def ranks(scores: np.ndarray) -> np.ndarray:
    """[task, row] ranks of scores[task, row] within each task, 1 for the highest, ties sharing their mean rank."""
    return np.vstack([stats.rankdata(-row) for row in scores])


def friedman(scores: np.ndarray) -> Friedman:
    """The Friedman test of scores[task, row] (higher is better): χ²_F = 12n/(k(k+1)) Σ_j (R_j − (k+1)/2)², R_j the
    mean ranks, divided by 1 − Σ(t³ − t)/(n k (k² − 1)) over the groups of t tied rows within a task."""
    n, k = scores.shape
    ranked = ranks(scores)
    mean_ranks = ranked.mean(axis=0)
    statistic = 12 * n / (k * (k + 1)) * float(np.sum((mean_ranks - (k + 1) / 2) ** 2))
    ties = sum(float(np.sum(counts ** 3 - counts)) for counts in
               (np.unique(row, return_counts=True)[1] for row in ranked))
    correction = 1 - ties / (n * k * (k * k - 1))
    statistic = statistic / correction if correction > 0 else 0.0
    return Friedman(statistic, float(stats.chi2.sf(statistic, k - 1)), [float(r) for r in mean_ranks])


def critical_difference(rows: int, tasks: int, level: float = LEVEL) -> float:
    """Nemenyi's critical difference of mean ranks: q_α √(k(k+1)/(6n)), q_α the studentized range quantile of k
    means over √2 (Demšar 2006, Table 5a)."""
    q = float(stats.studentized_range.ppf(level, rows, np.inf)) / math.sqrt(2)
    return q * math.sqrt(rows * (rows + 1) / (6 * tasks))


def _counts(draws: np.ndarray, n: int) -> np.ndarray:
    """[r, i]: how many times resample r drew run i."""
    return np.stack([np.bincount(row, minlength=n) for row in draws])


def improvement(row: Sequence[Sequence[float]], base: Sequence[Sequence[float]], level: float = LEVEL,
                resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, tuple[float, float]]:
    """rliable's aggregate probability of improvement of `row` over `base` (per task, the runs' values, higher is
    better): the mean over tasks of the Mann–Whitney estimate of P(a run of row beats one of base), ties ½; and its
    percentile interval over `resamples` stratified bootstrap resamples (within each task, in task order, the row's
    runs drawn with replacement, then the baseline's)."""
    rng = np.random.default_rng(seed)
    estimate, boot = 0.0, np.zeros(resamples)
    for mine, theirs in zip(row, base):
        beats = wins(np.asarray(mine, dtype=float), np.asarray(theirs, dtype=float))
        estimate += float(beats.mean())
        counts_a = _counts(rng.integers(0, len(mine), size=(resamples, len(mine))), len(mine))
        counts_b = _counts(rng.integers(0, len(theirs), size=(resamples, len(theirs))), len(theirs))
        boot += ((counts_a @ beats) * counts_b).sum(axis=1) / (len(mine) * len(theirs))
    tasks = len(row)
    low, high = np.percentile(boot / tasks, [50 * (1 - level), 50 * (1 + level)])
    return estimate / tasks, (float(low), float(high))
