"""Is a row's difference to the baseline real? Welch's two-sample t-test and the confidence interval that goes with it."""
from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Sequence

from scipy import stats

LEVEL = 0.95  # of the confidence interval; p < 1 - LEVEL counts as a difference at that level
# why a difference has no interval and p: the tag tables show after "n/a", and what it means
FEW_RUNS = "n<2"
NO_SPREAD = "no spread"
UNDEFINED = {FEW_RUNS: "fewer than 2 runs on a side",
             NO_SPREAD: "every run on both sides has the same value, where Welch's test is undefined"}


@dataclass(frozen=True)
class Difference:
    """mean(a) − mean(b), its Welch confidence interval and two-sided p (None when not defined)."""
    delta: float
    ci: tuple[float, float] | None  # None: fewer than 2 values on a side, or no spread on either
    p: float | None
    undefined: str | None = None    # FEW_RUNS or NO_SPREAD when ci and p are None

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < 1 - LEVEL


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Difference:
    """Welch's t-test (unequal variances) of a against b; the interval uses the Welch–Satterthwaite degrees of freedom."""
    delta = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Difference(delta, None, None, FEW_RUNS)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return Difference(delta, None, None, NO_SPREAD)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * math.sqrt(va + vb)
    with warnings.catch_warnings():  # scipy warns of precision loss when one side is constant; the p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return Difference(delta, (delta - half, delta + half), p)
