"""`regbench table --metric NAME`: any stored metric (summary.json, else the run folder's eval.json) compared with the
direction that is better for it, so that "better", P(A>B) and the headers read right for ECE and NLL."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from conftest import regbench
from regbench.articles import article_names, load_article
from regbench.report.aggregate import direction
from regbench.report.runs import find_runs
from regbench.report.sections import build_sections
from test_report import curve, make_run, summary

# test ECE per seed: mixup below none on every seed (better), dropout above (worse)
ECE = {"none": [0.10, 0.12, 0.11], "mixup": [0.04, 0.05, 0.045], "dropout": [0.15, 0.16, 0.17]}
ACC = {"none": [0.60, 0.62, 0.61], "mixup": [0.61, 0.63, 0.60], "dropout": [0.62, 0.61, 0.63]}


def sweep_run(folder: Path, reg: str, seed: int, stored: dict[str, Any], evaluated: dict[str, Any] | None) -> None:
    """A completed run of a sweep of no article with `stored` added to its summary.json and `evaluated` as eval.json."""
    choices = dict(model="mynet", act="relu", reg=reg, dataset="synthetic", optim="adam", sched="constant",
                   trainer="default", experiment=None)
    metrics = curve([0.5], [0.5], [1.0])
    make_run(folder, choices=choices, overrides=[f"reg={reg}", f"seed={seed}"], config={"seed": seed},
             summary={**summary("completed", metrics, 1000, seed, selected_on="val", **choices), **stored},
             metrics=metrics)
    if evaluated is not None:
        (folder / "eval.json").write_text(json.dumps(evaluated))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """none's ECE in summary.json; mixup's only in eval.json (a run made before summary.json had it, scored by
    `regbench eval`); dropout's in both, where summary.json's is the one read."""
    root = tmp_path / "sweep"
    for reg in ECE:
        for seed in range(3):
            ece, acc = ECE[reg][seed], ACC[reg][seed]
            stored = {"test_acc": acc} if reg == "mixup" else {"test_acc": acc, "test_ece": ece}
            evaluated = None if reg == "none" else {"test_ece": ece if reg == "mixup" else 0.01, "test_nll": 0.9,
                                                    "corruption_error": 0.5, "ood_auroc": 0.8}
            sweep_run(root / f"{reg}{seed}", reg, seed, stored, evaluated)
    return root


def table_lines(markdown: str) -> dict[str, list[str]]:
    """The table's lines by their first cell, split into cells."""
    return {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in markdown.splitlines()
            if line.startswith("| ")}


def test_a_lower_is_better_metric_reads_right(sweep: Path) -> None:
    markdown = regbench("table", str(sweep), "--metric", "test_ece", cwd=sweep).stdout
    lines = table_lines(markdown)
    header = lines["reg"]
    assert "test_ece (lower is better)" in header and header[-8:] == [
        "Δ vs reg=none", "95% CI", "p", "p (Holm)", "test", "P(A>B)", "P(A>B) 95% CI", "seeds for 80% power"]
    ece = header.index("test_ece (lower is better)")
    assert lines["mixup"][ece] == "0.0450 ± 0.0050"  # from eval.json
    assert lines["dropout"][ece] == "0.1600 ± 0.0100"  # summary.json's, not eval.json's 0.01
    # Δ stays row minus baseline: mixup's is negative, and a run of mixup beats every run of none
    assert lines["mixup"][-8] == "-0.0650" and lines["mixup"][-4:-1] == ["paired", "1.00", "[0.45, 1.00]"]
    assert lines["dropout"][-8] == "+0.0500" and lines["dropout"][-4:-1] == ["paired", "0.00", "[0.00, 0.55]"]
    assert ("reg=mixup is better than reg=none in test_ece (lower is better) at the 5% level (paired t-test); "
            "reg=dropout is worse. With n=3 runs per row") in markdown
    assert ("Δ vs reg=none: test_ece minus that of the reg=none row with the same other settings (lower is better: a "
            "negative Δ is an improvement)") in markdown
    assert "P(A>B): the probability that a run of the row beats a run of the reg=none row in test_ece (lower is " \
           "better;" in markdown

    rows = {r["reg"]: r for r in csv.DictReader(io.StringIO((sweep / "table.csv").read_text()))}
    assert {(r["compare"], r["higher_is_better"]) for r in rows.values()} == {("test_ece", "False")}
    for reg in ("mixup", "dropout"):
        row, mine, base = rows[reg], ECE[reg], ECE["none"]
        assert float(row["test_ece_mean"]) == pytest.approx(sum(mine) / 3)
        assert float(row["delta"]) == pytest.approx(sum(mine) / 3 - sum(base) / 3)
        assert float(row["p"]) == pytest.approx(stats.ttest_rel(mine, base).pvalue, rel=1e-9)
        # lower is better: the row's run beats the baseline's when its ECE is below, i.e. U of the baseline's values
        assert float(row["prob_better"]) == pytest.approx(stats.mannwhitneyu(base, mine).statistic / 9)
    assert float(rows["mixup"]["prob_better"]) == 1.0 > 0.5 and float(rows["dropout"]["prob_better"]) == 0.0
    assert rows["none"]["is_baseline"] == "True"


def test_an_unknown_metric_is_one_line_naming_what_the_runs_have(sweep: Path) -> None:
    bad = regbench("table", str(sweep), "--metric", "ood_aurc", cwd=sweep, check=False)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
    found = re.fullmatch(r"regbench: error: --metric ood_aurc: no run has it; the runs have (.*) \(summary\.json\), "
                         r"(.*) \(eval\.json\) and, as max:KEY, last:KEY or KEY@EPOCH, (.*) \(metrics\.jsonl\)\n",
                         bad.stderr)
    assert found, bad.stderr
    summary_names, evaluated, curves = (set(group.split(", ")) for group in found.groups())
    assert {"test_acc", "test_ece", "best_val_acc", "wall_time_s"} <= summary_names
    assert evaluated == {"corruption_error", "ood_auroc", "test_ece", "test_nll"}
    assert {"val_acc", "train_loss"} <= curves
    assert not (sweep / "table.md").exists()


def test_a_metric_of_unknown_direction_takes_the_users_word(sweep: Path) -> None:
    bad = regbench("table", str(sweep), "--metric", "wall_time_s", cwd=sweep, check=False)
    assert bad.returncode == 2 and bad.stderr == (
        "regbench: error: regbench does not know whether a higher or a lower wall_time_s is better: pass --metric "
        "wall_time_s with --higher-is-better or --lower-is-better\n")
    out = regbench("table", str(sweep), "--metric", "wall_time_s", "--lower-is-better", cwd=sweep).stdout
    assert "| wall_time_s (lower is better) |" in out
    bad = regbench("table", str(sweep), "--lower-is-better", cwd=sweep, check=False)
    assert bad.returncode == 2 and bad.stderr == ("regbench: error: --higher-is-better and --lower-is-better say the "
                                                  "direction of one --metric NAME: give exactly one --metric\n")


def test_the_users_direction_overrides_a_known_one(sweep: Path) -> None:
    [section] = build_sections(find_runs([sweep]), metric="test_ece", higher_is_better=True)
    beats = {r.values["reg"]: r.comparison.beats.estimate for r in section.rows if r.comparison}
    assert section.header("test_ece") == "test_ece" and beats == {"mixup": 0.0, "dropout": 1.0}


def test_nll_from_eval_json_and_the_default_metric_keep_their_direction(sweep: Path) -> None:
    """--metric test_nll reads eval.json where summary.json lacks it; without --metric: test_acc, higher is better."""
    runs = find_runs([sweep])
    [section] = build_sections(runs, metric="test_nll")
    assert (section.compare, section.higher_is_better, section.header("test_nll")) == (
        "test_nll", False, "test_nll (lower is better)")
    assert {r.values["reg"]: r.stats["test_nll"] and r.stats["test_nll"].mean for r in section.rows} == {
        "none": None, "mixup": 0.9, "dropout": 0.9}
    [section] = build_sections(runs)
    assert (section.compare, section.higher_is_better, section.header("test_acc")) == ("test_acc", True, "test acc")


@pytest.mark.parametrize("name", article_names())
def test_every_articles_metric_has_a_direction(name: str) -> None:
    """The table of an article's sweep compares in its metric with the direction regbench.metrics gives it."""
    assert direction(load_article(name).compare) is not None
