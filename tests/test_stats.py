"""Welch's t-test and interval against answers worked out by hand (t with 1 or 2 degrees of freedom has a closed-form
distribution: Cauchy, and F(t) = 1/2 + t / (2·sqrt(2 + t²)))."""
from __future__ import annotations

import math

import pytest

from regbench.report.stats import FEW_RUNS, NO_SPREAD, welch


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
