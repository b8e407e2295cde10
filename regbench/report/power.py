"""Seeds needed: how many runs per row the same t-test would need to detect the observed difference with 80% power at
the 5% level, given the observed spread; so a reader sees whether more seeds could settle a comparison."""
from __future__ import annotations

import math
import statistics
from typing import Sequence

import numpy as np
from scipy import stats

from regbench.report.stats import LEVEL

POWER = 0.8
MOST_SEEDS = 50  # searched up to; beyond, tables say "> 50"
SEEDS = np.arange(2, MOST_SEEDS + 1)


def _power(shift: np.ndarray, df: np.ndarray, level: float) -> np.ndarray:
    """The two-sided t-test's power: P(|T| > t_crit) with T noncentral t (`df`, noncentrality `shift`)."""
    critical = stats.t.ppf(0.5 + level / 2, df)
    return stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)


def _first(power: np.ndarray) -> float:
    reached = np.flatnonzero(power >= POWER)
    return float(SEEDS[reached[0]]) if reached.size else math.inf


def paired_seeds(differences: Sequence[float], level: float = LEVEL) -> float | None:
    """The seeds at which the paired t-test detects the mean of `differences` (effect: mean / their sd) with POWER;
    inf beyond MOST_SEEDS, None without spread."""
    if len(differences) < 2 or statistics.stdev(differences) == 0:
        return None
    effect = statistics.fmean(differences) / statistics.stdev(differences)
    return _first(_power(effect * np.sqrt(SEEDS), SEEDS - 1.0, level))


def welch_seeds(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> float | None:
    """The runs per row at which Welch's t-test detects mean(a) − mean(b) with POWER, each row keeping its own sd
    (Welch–Satterthwaite degrees of freedom at that size); inf beyond MOST_SEEDS, None without spread."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a), statistics.variance(b)
    if va + vb == 0:
        return None
    delta = statistics.fmean(a) - statistics.fmean(b)
    df = (va + vb) ** 2 * (SEEDS - 1.0) / (va ** 2 + vb ** 2)
    return _first(_power(delta / np.sqrt((va + vb) / SEEDS), df, level))
