"""Rows across tasks (`regbench table --by dataset`): the Friedman test against scipy, the mean ranks and Nemenyi's
critical difference against Demšar's table, and rliable's aggregate probability of improvement against a stratified
bootstrap written out here, on run folders in the trainer's format."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from conftest import regbench
from regbench.errors import UserError
from regbench.report.across_tasks import write_across_tasks
from regbench.report.ranks import BOOTSTRAP_SEED, RESAMPLES, critical_difference, friedman, improvement
from regbench.report.runs import find_runs
from test_report import curve, make_run, summary

REGS = ("none", "cutout", "dropout", "mixup")
TASKS = ("cifar10", "cifar100", "mnist")
# test accuracy per task, reg and seed: cutout ahead on two tasks, dropout behind everywhere, mixup tied with none
# on mnist's first seed (a tie inside the bootstrap's wins)
RNG = np.random.default_rng(5)
SHIFT = {"none": 0.0, "cutout": 0.01, "dropout": -0.02, "mixup": 0.002}
ACC = {(task, reg): [round(0.6 + 0.1 * t + SHIFT[reg] + RNG.normal(0, 0.01), 4) for _ in range(3)]
       for t, task in enumerate(TASKS) for reg in REGS}
ACC["mnist", "mixup"][0] = ACC["mnist", "none"][0]


def task_run(folder: Path, dataset: str, reg: str, seed: int, acc: float) -> None:
    choices = dict(model="mynet", act="relu", reg=reg, dataset=dataset, optim="adam", sched="constant",
                   trainer="default", experiment=None)
    metrics = curve([0.5], [0.5], [1.0])
    make_run(folder, choices=choices, overrides=[f"reg={reg}", f"dataset={dataset}", f"seed={seed}"],
             config={"seed": seed}, metrics=metrics,
             summary=summary("completed", metrics, 1000, seed, test_acc=acc, selected_on="val", **choices))


@pytest.fixture
def study(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    for (task, reg), accs in ACC.items():
        for seed, acc in enumerate(accs):
            task_run(root / f"{task}-{reg}-{seed}", task, reg, seed, acc)
    return root


def _means() -> np.ndarray:
    return np.array([[np.mean(ACC[task, reg]) for reg in REGS] for task in TASKS])


def test_friedman_matches_scipy_and_ranks_by_hand() -> None:
    means = _means()
    test = friedman(means)
    expected = stats.friedmanchisquare(*means.T)
    assert (test.statistic, test.p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)
    by_hand = np.mean([stats.rankdata(-row) for row in means], axis=0)
    assert test.mean_ranks == pytest.approx(list(by_hand))
    tied = np.array([[1.0, 1.0, 0.5, 0.2], [0.3, 0.9, 0.9, 0.1], [0.4, 0.6, 0.5, 0.5]])  # ties within tasks
    expected = stats.friedmanchisquare(*tied.T)
    assert (friedman(tied).statistic, friedman(tied).p) == pytest.approx((expected.statistic, expected.pvalue))


def test_critical_difference_uses_demsars_q() -> None:
    """Demšar (2006), Table 5a: q_0.05 = 1.960, 2.343, 2.569, 2.728, 3.164 for k = 2, 3, 4, 5, 10."""
    for k, q in ((2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (10, 3.164)):
        assert critical_difference(k, 7) == pytest.approx(q * np.sqrt(k * (k + 1) / 42), abs=2e-3)


def _stratified_bootstrap(row: list[list[float]], base: list[list[float]]) -> tuple[float, float]:
    """The percentile interval of the mean over tasks of P(row beats base), runs resampled within each task: the
    draws in the order improvement() documents (per task the row's, then the baseline's)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = [(rng.integers(0, len(a), size=(RESAMPLES, len(a))), rng.integers(0, len(b), size=(RESAMPLES, len(b))))
             for a, b in zip(row, base)]
    values = []
    for r in range(RESAMPLES):
        per_task = []
        for (da, db), a, b in zip(draws, row, base):
            xs, ys = [a[i] for i in da[r]], [b[j] for j in db[r]]
            per_task.append(sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in xs for y in ys) / (len(xs) * len(ys)))
        values.append(sum(per_task) / len(per_task))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def test_probability_of_improvement_against_a_stratified_bootstrap_written_out() -> None:
    row, base = [ACC[t, "mixup"] for t in TASKS], [ACC[t, "none"] for t in TASKS]
    estimate, interval = improvement(row, base)
    by_task = [stats.mannwhitneyu(a, b).statistic / 9 for a, b in zip(row, base)]
    assert estimate == pytest.approx(np.mean(by_task), abs=1e-12)
    assert interval == pytest.approx(_stratified_bootstrap(row, base), abs=1e-12)
    assert interval[0] <= estimate <= interval[1]


def test_table_by_dataset_writes_the_section_and_the_diagram(study: Path) -> None:
    out = regbench("table", str(study), "--by", "dataset", cwd=study).stdout
    section = (study / "across_dataset_test_acc.md").read_text()
    assert section in out and "## test_acc across dataset: cifar10, cifar100, mnist" in section
    means = _means()
    test = stats.friedmanchisquare(*means.T)
    assert f"χ²_F = {test.statistic:.3f} (3 df), p = {test.pvalue:.3g}" in section
    assert f"CD = {critical_difference(4, 3):.2f}" in section
    lines = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in section.splitlines()
             if line.startswith("| reg=")}
    ranks = np.mean([stats.rankdata(-row) for row in means], axis=0)
    for j, reg in enumerate(REGS):
        cells = lines[f"reg={reg}"]
        assert float(cells[1]) == pytest.approx(ranks[j], abs=5e-3)
        assert cells[2:5] == [f"{np.mean(ACC[t, reg]):.4f} (3)" for t in TASKS]
        if reg == "none":
            assert cells[5:] == ["baseline"]  # and an empty CI cell, stripped
        else:
            estimate, (low, high) = improvement([ACC[t, reg] for t in TASKS], [ACC[t, "none"] for t in TASKS])
            assert cells[5:] == [f"{estimate:.2f}", f"[{low:.2f}, {high:.2f}]"]
    image = plt.imread(study / "critical_difference_dataset_test_acc.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 300
    assert "[the diagram](critical_difference_dataset_test_acc.png)" in section


def test_lower_is_better_ranks_the_lowest_first_and_one_task_is_none(study: Path) -> None:
    runs = find_runs([study])
    ranked = write_across_tasks(runs, study, "dataset", "test_acc")
    flipped = write_across_tasks(runs, study, "dataset", "test_acc", higher_is_better=False)
    first = [line.split(" | ")[0] for line in ranked.splitlines() if line.startswith("| reg=")]
    assert [line.split(" | ")[0] for line in flipped.splitlines() if line.startswith("| reg=")] == first[::-1]
    only = [r for r in runs if r.value("dataset") == "mnist"]
    assert write_across_tasks(only, study / "mnist-none-0", "dataset", "test_acc") is None
    assert not (study / "mnist-none-0" / "across_dataset_test_acc.md").exists()


def test_bad_keys_are_one_line(study: Path) -> None:
    bad = regbench("table", str(study), "--by", "nosuchkey", cwd=study, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("regbench: error: --by nosuchkey: no completed run has it") \
        and len(bad.stderr.splitlines()) == 1
    with pytest.raises(UserError, match=r"^--baseline reg=mixup2: no row on every task has it; the rows differ in "
                                        r"reg$"):
        write_across_tasks(find_runs([study]), study, "dataset", "test_acc", ("reg", "mixup2"))
    out = regbench("table", str(study / "mnist-none-0"), "--by", "dataset", cwd=study).stdout
    assert "every run has the same dataset" in out
