"""A study's MC passes and seed ensembles: scored once by the study's scoring stage (rows without stochastic layers
or with one seed skipped), and the report's uncertainty table equal to the runs' eval.json figures and their mean ±
sd computed here."""
from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from regbench import run_dir
from regbench.articles import Evaluate
from regbench.report.runs import find_runs
from regbench.study.rows import named_rows
from regbench.study.score import ensemble_rows, score_sweep, seed_rows
from regbench.study.uncertainty import uncertainty_table
from conftest import read_json, regbench, trained_sweep

METRICS = ("acc", "ece", "nll", "brier", "aece", "aurc", "risk80")
pytestmark = pytest.mark.slow  # trains a 4-run sweep in subprocesses


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_sweep(tmp_path_factory.mktemp("uncertainty"), "seed=0,1", "reg=dropout,none",
                         "trainer.max_steps=10", "trainer.eval_every_steps=10")


def figures(run: Path) -> dict:
    return read_json(run / run_dir.EVALUATED)["figures"]


def stat(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def test_scoring_a_study_runs_mc_and_ensembles_once(sweep: Path) -> None:
    evaluate = Evaluate(mc_samples=2, ensemble=True)
    lines: list[tuple[int, int, str]] = []
    assert score_sweep(sweep, evaluate, print, lambda i, n, run: lines.append((i, n, run.name))) == 6
    assert lines == [(i, 4, str(i - 1)) for i in range(1, 5)]
    rows = seed_rows(sweep)
    assert sorted(name for name, _ in rows) == ["reg=dropout", "reg=none"]
    assert ensemble_rows(rows, evaluate, lambda i, n, name: lines.append((i, n, name))) == 2
    for name, runs in rows:
        for run in runs:
            stored = figures(run)
            assert ("mc2_test_acc" in stored) == (name == "reg=dropout"), (name, run)  # none has no stochastic layer
            assert stored["ensemble_test_acc"] == figures(runs[0])["ensemble_test_acc"]
    before = {run: (run / run_dir.EVALUATED).read_bytes() for run in sweep.iterdir() if run.name.isdigit()}
    assert score_sweep(sweep, evaluate, print, lambda *_: None) == 0  # the same arguments: nothing again
    assert ensemble_rows(rows, evaluate, lambda *_: None) == 0
    assert before == {run: (run / run_dir.EVALUATED).read_bytes() for run in before}


def test_the_uncertainty_table_holds_the_runs_figures(sweep: Path) -> None:
    evaluate = Evaluate(mc_samples=2, ensemble=True)
    score_sweep(sweep, evaluate, print, lambda *_: None)  # nothing when the test above ran
    ensemble_rows(seed_rows(sweep), evaluate, lambda *_: None)
    report = Path(regbench("report", str(sweep)).stdout.strip()).parent
    text = (report / run_dir.UNCERTAINTY_MD).read_text()
    assert "[uncertainty.md](uncertainty.md)" in (report / run_dir.REPORT_README).read_text()
    tabled = [f"test_{m}" for m in METRICS]
    rows = named_rows(find_runs([sweep]))
    full = uncertainty_table(rows, tabled)
    for markdown, metrics in ((text, ["test_acc"]), (full, tabled)):  # the report's (test_acc alone: no article)
        cells = {(c[0], c[1]): c[2:] for line in markdown.splitlines() if line.startswith("| reg=")
                 for c in [[x.strip() for x in line.strip("|").split("|")]]}
        assert len(cells) == 2 * len(metrics)
        for name, row in rows:
            runs = [r.path for r in row.runs]
            for metric in metrics:
                mc = f"mc2_{metric}"
                single, sampled, ensemble = cells[name, metric]
                assert single == stat([figures(r)[metric] for r in runs])
                assert sampled == (stat([figures(r)[mc] for r in runs]) if name == "reg=dropout" else "—")
                assert ensemble == f"{figures(runs[0])[f'ensemble_{metric}']:.4f}"
    assert "stochastic passes (N = 2)" in text
