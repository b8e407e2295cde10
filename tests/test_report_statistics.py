"""Statistics at the scale of a report: the p of all its comparisons adjusted together (Holm, Benjamini–Hochberg)
against statsmodels, the seeds for 80% power against statsmodels' power and the noncentral t written out, and
`regbench table --correction` / several `--metric` by the command line."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from conftest import regbench
from regbench.report.correction import adjust
from regbench.report.power import paired_seeds, welch_seeds
from test_table_metric import sweep_run

NONE_ACC = [0.60, 0.62, 0.61]
# each row above none on every seed by a little: paired p 0.038 for both, under 0.05 alone, not after Holm's ×2
ACC = {"none": NONE_ACC, "mixup": [x + d for x, d in zip(NONE_ACC, (0.005, 0.01, 0.01))],
       "dropout": [x + d for x, d in zip(NONE_ACC, (0.01, 0.005, 0.01))]}
ECE = {"none": [0.10, 0.12, 0.11], "mixup": [0.04, 0.05, 0.045], "dropout": [0.15, 0.16, 0.17]}


@pytest.mark.parametrize("method, theirs", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_matches_statsmodels(method: str, theirs: str) -> None:
    rng = np.random.default_rng(3)
    for p in ([0.01, 0.04, 0.03, 0.005], [0.2, 0.2, 0.01, 0.9, 1.0], list(rng.uniform(0, 0.1, 12)), [0.5]):
        assert adjust(p, method) == pytest.approx(list(multipletests(p, method=theirs)[1]), abs=1e-12)
    assert adjust([0.01, 0.04], "none") == [0.01, 0.04] and adjust([], "holm") == []


def _first_n(power, most: int = 50) -> float:
    return next((n for n in range(2, most + 1) if power(n) >= 0.8), float("inf"))


@pytest.mark.parametrize("differences", [[0.01, 0.02, 0.015], [0.05, -0.01, 0.02, 0.03], [0.001, -0.002, 0.0015],
                                         [0.10, 0.09, 0.11]])
def test_paired_seeds_match_statsmodels_one_sample_power(differences: list[float]) -> None:
    effect = np.mean(differences) / np.std(differences, ddof=1)
    def power(n: int) -> float:
        found = TTestPower().power(effect_size=effect, nobs=n, alpha=0.05)
        if np.isnan(found):  # statsmodels' power is nan for huge effects (d = 10 at n = 3): the noncentral t by hand
            crit, shift = stats.t.ppf(0.975, n - 1), effect * n ** 0.5
            found = 1 - stats.nct.cdf(crit, n - 1, shift) + stats.nct.cdf(-crit, n - 1, shift)
        return found

    expected = _first_n(power)
    assert paired_seeds(differences) == expected
    assert paired_seeds([0.01, 0.01]) is None  # no spread: the test is undefined


def test_welch_seeds_with_equal_spreads_match_statsmodels_two_sample_power() -> None:
    a, b = [0.62, 0.64, 0.63], [0.60, 0.62, 0.61]  # equal sds: Welch's degrees of freedom are 2n − 2
    effect = (np.mean(a) - np.mean(b)) / np.std(a, ddof=1)
    assert welch_seeds(a, b) == _first_n(lambda n: TTestIndPower().power(effect_size=effect, nobs1=n, alpha=0.05))


def test_welch_seeds_with_unequal_spreads_by_the_noncentral_t_written_out() -> None:
    a, b = [0.60, 0.65, 0.70, 0.62], [0.60, 0.61, 0.605]
    va, vb, delta = np.var(a, ddof=1), np.var(b, ddof=1), np.mean(a) - np.mean(b)

    def power(n: int) -> float:
        se = ((va + vb) / n) ** 0.5
        df = (va / n + vb / n) ** 2 / ((va / n) ** 2 / (n - 1) + (vb / n) ** 2 / (n - 1))
        crit = stats.t.ppf(0.975, df)
        return stats.nct.sf(crit, df, delta / se) + stats.nct.cdf(-crit, df, delta / se)

    found = welch_seeds(a, b)
    assert found == _first_n(power) and 2 < found < 50
    assert welch_seeds([0.6, 0.6], [0.6, 0.6]) is None and welch_seeds([0.6], [0.5, 0.7]) is None
    assert welch_seeds([0.60, 0.62, 0.61], [0.61, 0.60, 0.62]) == float("inf")  # no difference: never


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    for reg in ACC:
        for seed in range(3):
            sweep_run(root / f"{reg}{seed}", reg, seed, {"test_acc": ACC[reg][seed], "test_ece": ECE[reg][seed]},
                      None)
    return root


def _rows(path: Path) -> dict[str, dict[str, str]]:
    return {r["reg"]: r for r in csv.DictReader(io.StringIO(path.read_text()))}


def test_the_verdict_follows_the_adjusted_p(sweep: Path) -> None:
    raw = [stats.ttest_rel(ACC[reg], NONE_ACC).pvalue for reg in ("mixup", "dropout")]
    assert max(raw) < 0.05 < min(multipletests(raw, method="holm")[1])
    out = regbench("table", str(sweep), cwd=sweep).stdout  # Holm by default
    assert "| p | p (Holm) | test |" in out
    assert ("p (Holm): p adjusted by Holm's step-down procedure over the 2 comparisons of this table; the line below "
            "reads it (--correction holm|bh|none).") in out
    assert "reg=dropout, reg=mixup do not differ from reg=none in test acc at the 5% level (paired t-test)" in out
    rows = _rows(sweep / "table.csv")
    assert [float(rows[r]["p_adjusted"]) for r in ("mixup", "dropout")] == pytest.approx(
        list(multipletests(raw, method="holm")[1]), rel=1e-9)

    out = regbench("table", str(sweep), "--correction", "bh", cwd=sweep).stdout
    assert "| p | p (BH) | test |" in out and "Benjamini–Hochberg's procedure over the 2 comparisons" in out
    assert "reg=dropout, reg=mixup are better than reg=none in test acc at the 5% level (paired t-test)" in out
    out = regbench("table", str(sweep), "--correction", "none", cwd=sweep).stdout
    assert "| p | test |" in out and "p (" not in out.split("\n\n")[2]
    assert ("p not adjusted for multiple comparisons (--correction none): of the 2 comparisons of this table, about "
            "0.1 reach p < 0.05 by chance when no row differs.") in out
    assert "reg=dropout, reg=mixup are better than reg=none" in out
    assert _rows(sweep / "table.csv")["mixup"]["p_adjusted"] == rows["mixup"]["p"]  # none: the raw p
    bad = regbench("table", str(sweep), "--correction", "bonferroni", cwd=sweep, check=False)
    assert bad.returncode == 2 and "invalid choice: 'bonferroni'" in bad.stderr


def test_several_metrics_are_one_family(sweep: Path) -> None:
    out = regbench("table", str(sweep), "--metric", "test_acc", "--metric", "test_ece", "--correction", "bh",
                   cwd=sweep).stdout
    assert not (sweep / "table.md").exists()
    acc, ece = _rows(sweep / "table_test_acc.csv"), _rows(sweep / "table_test_ece.csv")
    assert (sweep / "table_test_acc.md").read_text() + "\n" + (sweep / "table_test_ece.md").read_text() + "\n" == out
    order = [(acc, "mixup"), (acc, "dropout"), (ece, "mixup"), (ece, "dropout")]
    raw = [float(rows[reg]["p"]) for rows, reg in order]
    assert raw[2] == pytest.approx(stats.ttest_rel(ECE["mixup"], ECE["none"]).pvalue, rel=1e-9)
    assert [float(rows[reg]["p_adjusted"]) for rows, reg in order] == pytest.approx(
        list(multipletests(raw, method="fdr_bh")[1]), rel=1e-9)
    assert out.count("over the 4 comparisons of this report (2 tables)") == 2
    assert {r["seeds_for_power"] for r in acc.values() if r["reg"] != "none"} <= {str(n) for n in range(2, 51)}
    bad = regbench("table", str(sweep), "--metric", "test_acc", "--metric", "test_ece", "--lower-is-better",
                   cwd=sweep, check=False)
    assert bad.returncode == 2 and "give exactly one --metric" in bad.stderr
