"""Welch's and the paired t-test with their intervals, and P(A>B) with its score interval, against answers computed
independently: scipy.stats (ttest_rel, mannwhitneyu) and by hand (t with 1 or 2 degrees of freedom has a closed-form
distribution: Cauchy, and F(t) = 1/2 + t / (2·sqrt(2 + t²)))."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from regbench.report.stats import FEW_RUNS, NO_SPREAD, PAIRED, paired, welch
from regbench.report.superiority import Superiority, superiority

REPO = Path(__file__).resolve().parents[1]


def test_equal_variances_and_two_per_side_give_two_degrees_of_freedom() -> None:
    # a: mean 2, variance 2; b: mean 5, variance 2 -> se = sqrt(2/2 + 2/2) = sqrt(2), t = -3/sqrt(2), df = 2
    d = welch([1.0, 3.0], [4.0, 6.0])
    t = -3 / math.sqrt(2)
    assert d.delta == pytest.approx(-3.0)
    assert d.p == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), abs=1e-12)  # 0.16795
    q = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * 0.025)  # the 97.5% quantile of t(2): 4.30265
    assert q == pytest.approx(4.30265, abs=1e-5)
    assert d.ci == pytest.approx((-3 - q * math.sqrt(2), -3 + q * math.sqrt(2)), abs=1e-9)  # [-9.085, 3.085]
    assert not d.significant


def test_no_spread_on_one_side_leaves_one_degree_of_freedom() -> None:
    # a: mean 1, variance 2 (se² = 1); b constant -> se = 1, t = -4, df = (1)² / (1²/1) = 1: Cauchy
    d = welch([0.0, 2.0], [5.0, 5.0, 5.0])
    assert d.p == pytest.approx(1 - 2 * math.atan(4) / math.pi, abs=1e-12)  # 0.15596
    q = math.tan(math.pi * 0.475)  # 12.7062
    assert d.ci == pytest.approx((-4 - q, -4 + q), abs=1e-9)


def test_a_clear_difference_is_significant() -> None:
    d = welch([0.70, 0.71, 0.72], [0.60, 0.61, 0.62])
    assert d.delta == pytest.approx(0.10) and d.significant and d.p < 1e-3
    assert d.ci[0] > 0


def test_fewer_than_two_values_or_no_spread_is_not_applicable() -> None:
    one = welch([0.9], [0.8, 0.7])
    assert one.delta == pytest.approx(0.15) and one.ci is None and one.p is None and not one.significant
    assert one.undefined == FEW_RUNS
    same = welch([3.0, 3.0], [3.0, 3.0])
    assert same.delta == 0 and same.ci is None and same.p is None and same.undefined == NO_SPREAD
    shifted = welch([4.0, 4.0, 4.0], [3.0, 3.0])  # a difference, but none within either side: still no test
    assert shifted.delta == 1 and shifted.p is None and shifted.undefined == NO_SPREAD
    assert welch([0.0, 2.0], [5.0, 5.0]).undefined is None


# -- the paired t-test: against scipy.stats.ttest_rel (p and its confidence interval) and by hand ---------------------

PAIRED_CASES = [([0.605, 0.626, 0.614], [0.60, 0.62, 0.61]),
                ([0.70, 0.71, 0.72, 0.69, 0.74], [0.60, 0.72, 0.61, 0.65, 0.70]),
                ([3.0, 1.0, 4.0, 1.0, 5.0, 9.0], [2.0, 6.0, 5.0, 3.0, 5.0, 8.0])]


@pytest.mark.parametrize("a, b", PAIRED_CASES)
def test_paired_matches_scipy_ttest_rel(a: list[float], b: list[float]) -> None:
    d = paired(a, b)
    expected = stats.ttest_rel(a, b)
    assert (d.test, d.pairs, d.undefined) == (PAIRED, len(a), None)
    assert d.delta == pytest.approx(sum(a) / len(a) - sum(b) / len(b), abs=1e-12)
    assert d.p == pytest.approx(expected.pvalue, rel=1e-9)
    assert d.ci == pytest.approx(tuple(expected.confidence_interval(0.95)), abs=1e-12)


def test_paired_with_two_seeds_by_hand() -> None:
    # differences 1 and 3: mean 2, sd √2, se 1, t = 2 with 1 degree of freedom (Cauchy)
    d = paired([11.0, 13.0], [10.0, 10.0])
    assert d.p == pytest.approx(1 - 2 * math.atan(2) / math.pi, abs=1e-12)  # 0.29517
    q = math.tan(math.pi * 0.475)  # the 97.5% quantile of t(1): 12.7062
    assert d.ci == pytest.approx((2 - q, 2 + q), abs=1e-9)


def test_pairing_finds_what_welch_misses() -> None:
    a, b = PAIRED_CASES[0]  # +0.005, +0.006, +0.004 on every seed, small beside the spread between seeds
    assert paired(a, b).significant and not welch(a, b).significant


def test_paired_differences_all_equal_have_no_spread() -> None:
    exact = paired([0.6, 0.6], [0.5, 0.5])
    assert exact.delta == pytest.approx(0.1) and (exact.ci, exact.p, exact.undefined) == (None, None, NO_SPREAD)
    # 0.7 − 0.5 and 0.8 − 0.6 differ in the last bits of a float: still the same difference
    assert 0.7 - 0.5 != 0.8 - 0.6
    shifted = paired([0.7, 0.8, 0.9], [0.5, 0.6, 0.7])
    assert (shifted.p, shifted.undefined, shifted.test) == (None, NO_SPREAD, PAIRED)
    assert paired([0.7, 0.8], [0.5, 0.61]).undefined is None
    with pytest.raises(ValueError, match="one of b per a"):
        paired([1.0, 2.0], [1.0])


# -- P(A>B): the Mann–Whitney estimate against scipy's U and a hand count; its bootstrap interval ---------------------

def _hand_count(a: list[float], b: list[float]) -> float:
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b) / (len(a) * len(b))


@pytest.mark.parametrize("a, b", [([0.63, 0.60, 0.64], [0.60, 0.62, 0.61]), ([1.0, 2.0, 2.0, 3.0], [2.0, 2.0]),
                                  *PAIRED_CASES])
def test_superiority_is_the_mann_whitney_estimate(a: list[float], b: list[float]) -> None:
    s = superiority(a, b)
    assert s.estimate == pytest.approx(stats.mannwhitneyu(a, b).statistic / (len(a) * len(b)), abs=1e-12)
    assert s.estimate == pytest.approx(_hand_count(a, b), abs=1e-12)
    # lower is better: a run of a beats one of b when it is lower, which is b beating a the other way round
    lower = superiority(a, b, higher_is_better=False)
    assert lower.estimate == pytest.approx(stats.mannwhitneyu(b, a).statistic / (len(a) * len(b)), abs=1e-12)
    assert lower.estimate == pytest.approx(1 - s.estimate, abs=1e-12)


def _hanley_mcneil(theta: np.ndarray, m: int, n: int) -> np.ndarray:
    """Hanley and McNeil's variance of the Mann–Whitney estimate (Q1 = θ/(2−θ), Q2 = 2θ²/(1+θ)), with m−1 and n−1
    replaced by their mean, as Newcombe's Method 5 does."""
    q1, q2, star = theta / (2 - theta), 2 * theta ** 2 / (1 + theta), (m + n) / 2 - 1
    return (theta * (1 - theta) + star * (q1 - theta ** 2) + star * (q2 - theta ** 2)) / (m * n)


@pytest.mark.parametrize("a, b", [([0.63, 0.60, 0.64, 0.66], [0.60, 0.62, 0.61]), ([1.0, 2.0, 3.0], [0.0, -1.0, -2.0]),
                                  ([0.5, 0.5], [0.5, 0.5, 0.5]),
                                  ([0.1, 0.2, 0.3, 0.4, 0.5], [0.45, 0.6, 0.7, 0.8, 0.9])])
def test_superiority_interval_is_every_theta_the_continuity_corrected_score_test_keeps(a: list[float],
                                                                                      b: list[float]) -> None:
    """The interval against the set of θ on a fine grid where |estimate − θ| − 1/(2mn) <= z·√Var(θ)."""
    m, n, s = len(a), len(b), superiority(a, b)
    grid = np.linspace(0.0, 1.0, 200_001)
    z = stats.norm.ppf(0.975)
    kept = grid[np.abs(s.estimate - grid) - 0.5 / (m * n) <= z * np.sqrt(_hanley_mcneil(grid, m, n))]
    assert s.ci == pytest.approx((kept.min(), kept.max()), abs=1e-5)
    assert s.ci[0] <= s.estimate <= s.ci[1]
    lower = superiority(a, b, higher_is_better=False).ci  # lower is better: the same interval the other way round
    assert lower == pytest.approx((1 - s.ci[1], 1 - s.ci[0]), abs=1e-9)


def test_three_runs_always_ahead_of_three_leave_room_below_one() -> None:
    """The bootstrap read 1.00 [1.00, 1.00] here; the exact Mann–Whitney test's two-sided p is 0.10, so a 95%
    interval compatible with it holds 0.5."""
    a, b = [0.92, 0.93, 0.94], [0.90, 0.91, 0.895]
    s = superiority(a, b)
    assert stats.mannwhitneyu(a, b, method="exact").pvalue == pytest.approx(0.1)
    assert s.estimate == 1.0 and s.ci[1] == 1.0 and s.ci[0] < 0.5
    assert superiority(a, b, higher_is_better=False).ci == pytest.approx((0.0, 1 - s.ci[0]))


def test_superiority_interval_keeps_its_coverage_in_a_simulation() -> None:
    """scripts/superiority_coverage.py: 2,000 draws of normal samples per cell, n = 3, 5, 10 per side, true P(A>B)
    0.5, 0.76, 0.92; the 95% interval holds the truth in at least 93% of them in every cell."""
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "superiority_coverage.py"), "--draws", "2000"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.strip("| ").split(" | ") for line in out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["3", "5", "10"] and all(len(row) == 4 for row in rows)
    coverage = [float(cell) for row in rows for cell in row[1:]]
    assert min(coverage) >= 0.93 and max(coverage) <= 1.0, out


def test_superiority_interval_narrows_with_more_runs() -> None:
    rng = np.random.default_rng(7)
    widths = []
    for n in (5, 20, 80):
        s = superiority(list(rng.normal(0.6, 0.01, n)), list(rng.normal(0.595, 0.01, n)))
        assert 0 <= s.ci[0] <= s.estimate <= s.ci[1] <= 1
        widths.append(s.ci[1] - s.ci[0])
    assert widths[0] > widths[1] > widths[2]


def test_superiority_with_fewer_than_two_runs_has_no_interval() -> None:
    assert superiority([0.7], [0.6, 0.65]) == Superiority(1.0, None, FEW_RUNS)
    assert superiority([0.6, 0.65], [0.6]) == Superiority(0.75, None, FEW_RUNS)
