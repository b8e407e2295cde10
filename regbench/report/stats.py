"""Is a row's difference to the baseline real? Welch's two-sample t-test, or the paired t-test when the runs of the two
rows were made with the same seeds, and the confidence interval that goes with each."""
from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Sequence

from scipy import stats

LEVEL = 0.95  # of the confidence interval; p < 1 - LEVEL counts as a difference at that level
WELCH = "welch"
PAIRED = "paired"
TESTS = {WELCH: "Welch's t-test", PAIRED: "paired t-test"}
# why a difference has no interval and p: the tag tables show after "n/a"
FEW_RUNS = "n<2"
NO_SPREAD = "no spread"
# what each tag means, per test
UNDEFINED = {(WELCH, FEW_RUNS): "fewer than 2 runs on a side",
             (WELCH, NO_SPREAD): "every run on both sides has the same value, where Welch's test is undefined",
             (PAIRED, NO_SPREAD): "every seed's difference is the same, where the paired t-test is undefined"}
# differences this close (relative to the values) are the same: a - b of distinct floats is rarely exactly equal
SAME = 1e-9


@dataclass(frozen=True)
class Difference:
    """a − b (mean of the per-seed differences when paired), its confidence interval and two-sided p (None when not
    defined), and the test that gave them."""
    delta: float
    ci: tuple[float, float] | None  # None: fewer than 2 values on a side, or no spread
    p: float | None
    undefined: str | None = None    # FEW_RUNS or NO_SPREAD when ci and p are None
    test: str = WELCH
    pairs: int = 0                  # the seeds a paired test used (0 for Welch)
    p_adjusted: float | None = None  # p adjusted for the report's multiple comparisons (report/correction.py)

    @property
    def significant(self) -> bool:
        """Whether the adjusted p (the raw one until it is adjusted) is below 1 − LEVEL."""
        p = self.p if self.p_adjusted is None else self.p_adjusted
        return p is not None and p < 1 - LEVEL


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


def paired(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Difference:
    """The paired t-test of a[i] − b[i] (a[i] and b[i] made with the same seeds): t = mean / (sd / √n), n − 1 degrees
    of freedom; the interval is the mean ± the t quantile × sd / √n."""
    if len(a) != len(b):
        raise ValueError(f"paired values need one of b per a: {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    n, delta = len(diffs), statistics.fmean(diffs)
    if n < 2:
        return Difference(delta, None, None, FEW_RUNS, PAIRED, n)
    if max(diffs) - min(diffs) <= SAME * max(1.0, *(abs(v) for v in (*a, *b))):
        return Difference(delta, None, None, NO_SPREAD, PAIRED, n)
    se = statistics.stdev(diffs) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(delta) / se, n - 1))
    return Difference(delta, (delta - half, delta + half), p, None, PAIRED, n)
