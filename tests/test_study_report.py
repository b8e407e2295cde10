"""`regbench report`: a study's report folder from its run folders — README, a table per declared metric, the curves,
one reliability diagram per row (its seeds' predictions pooled) and the corruption figure."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np

from conftest import ece_by_loop, regbench, run_folders
from regbench.reproduce import sweep_overrides
from regbench.report.runs import find_runs
from regbench.study.corruption_figure import row_errors
from regbench.study.rows import named_rows

LABELS = ["none", "dropout", "dropout2d", "dropblock", "cutout", "mixup", "cutmix"]
CORRUPTIONS = ["gaussian_noise", "fog"]


def small_sweep(tmp_path: Path) -> tuple[Path, dict[int, tuple[list, list]], Path]:
    """League_cpu's quick grid × seeds 0, 1 as Hydra composes it, each run folder written as a completed run would be
    (summary, metrics log, eval.json's corruption accuracy, saved probabilities, corruptions.json); returns the sweep,
    each row's pooled (probs, labels) and the data file the runs name."""
    data = tmp_path / "cifar.tar.gz"
    data.write_bytes(b"the bytes whose checksum the README gives")
    sweep = tmp_path / "sweep"
    folders = run_folders(sweep, sweep_overrides("league_cpu", "quick", ["seed=0,1", f"dataset.data_file={data}"]))
    rng = np.random.default_rng(0)
    pooled: dict[int, tuple[list, list]] = {}
    for i, folder in enumerate(folders):
        row, seed = divmod(i, 2)
        summary = {"status": "completed", "seed": seed, "test_acc": 0.5 + 0.01 * row + 0.002 * seed,
                   "test_ece": 0.1 - 0.005 * row + 0.001 * seed, "test_nll": 1.5 - 0.02 * row - 0.003 * seed,
                   "best_val_acc": 0.5, "wall_time_s": 30.0, "steps": 4, "selected_on": "val"}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1.0, "val_acc": 0.5, "train_loss": 1.0}) + "\n")
        accuracy = 0.3 + 0.01 * row + 0.001 * seed
        (folder / "eval.json").write_text(json.dumps({"figures": {"corruption_acc": accuracy}, "families": {
            "corruption": {"checkpoint": "best", "overrides": [], "figures": ["corruption_acc"]}}}))
        cells = {name: {"accuracy": [accuracy + 0.02 * k - 0.05 * s for s in range(5)]}
                 for k, name in enumerate(CORRUPTIONS)}
        (folder / "corruptions.json").write_text(json.dumps({"n": 40, "corruptions": cells, "files": "f00d"}))
        logits = rng.normal(scale=1 + i, size=(40, 10))
        probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
        labels = rng.integers(0, 10, size=40)
        np.savez(folder / "probs_test_best.npz", probs=probs, labels=labels)
        pooled.setdefault(row, ([], []))[0].extend(probs)
        pooled[row][1].extend(labels)
    return sweep, pooled, data


def test_the_report_holds_every_declared_table_and_figure_and_reruns_byte_identical(tmp_path: Path) -> None:
    sweep, pooled, data = small_sweep(tmp_path)
    proc = regbench("report", str(sweep), "--article", "league_cpu", cwd=tmp_path)
    report = sweep / "report"
    assert proc.stdout.strip() == str(report / "README.md")
    readme = (report / "README.md").read_text()
    for metric in ("test_acc", "test_ece", "test_nll", "corruption_acc"):
        rows = list(csv.DictReader(io.StringIO((report / f"table_{metric}.csv").read_text())))
        assert [r["row"].rstrip(" †") for r in rows] == LABELS and {r["compare"] for r in rows} == {metric}
        assert all(r[f"{metric}_mean"] for r in rows)  # every row holds the metric, each compared with none
        assert f"### {metric} ([table_{metric}.md](table_{metric}.md))" in readme
    # each row's diagram pools its two seeds' 40 predictions: the ECE computed here by a plain loop
    for row, label in enumerate(LABELS):
        probs, labels = pooled[row]
        assert (report / f"reliability_{label}.png").stat().st_size > 0
        assert f"[reliability of {label}, its seeds pooled (n=80, ECE {ece_by_loop(probs, labels):.4f})]" in readme
    assert (report / "plot.png").is_file() and "(corruptions.png)" in readme
    # the protocol, data and the place left for a person
    assert "- seeds: 0, 1 (14 runs)" in readme and "- budget: quick" not in readme  # no study.json: not reproduce's
    assert f"`cifar.tar.gz`: sha256 `{hashlib.sha256(data.read_bytes()).hexdigest()}`" in readme
    assert "TO BE WRITTEN by a person" in readme and "- training: 7.0 min summed" in readme
    assert f"`regbench report {sweep} --article league_cpu --correction holm`" in readme
    tables = {p.name: p.read_bytes() for p in report.glob("table_*")}
    assert len(tables) == 8
    regbench("report", str(sweep), "--article", "league_cpu", cwd=tmp_path)
    assert {p.name: p.read_bytes() for p in report.glob("table_*")} == tables


def test_the_corruption_figure_divides_each_rows_error_by_the_baselines(tmp_path: Path) -> None:
    sweep, _, _ = small_sweep(tmp_path)
    rows = named_rows(find_runs([sweep]))
    for row_index, (_, row) in enumerate(rows):
        expected = {name: np.mean([np.mean([1 - (0.3 + 0.01 * row_index + 0.001 * seed + 0.02 * k - 0.05 * s)
                                            for s in range(5)]) for seed in (0, 1)])
                    for k, name in enumerate(CORRUPTIONS)}
        found = row_errors(row)
        assert set(found) == set(CORRUPTIONS) and all(abs(found[n] - v) < 1e-12 for n, v in expected.items())


def test_a_run_without_saved_probabilities_gets_no_diagram_and_the_rest_is_written(tmp_path: Path) -> None:
    sweep, _, _ = small_sweep(tmp_path)
    (sweep / "0" / "probs_test_best.npz").unlink()
    regbench("report", str(sweep), cwd=tmp_path)
    report = sweep / "report"
    assert not (report / "reliability_none.png").exists() and (report / "reliability_dropout.png").exists()
    assert (report / "table_corruption_acc.md").exists()  # the article found from the runs' experiment


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = regbench("report", str(tmp_path / "empty"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no run folders" in proc.stderr
    sweep, _, _ = small_sweep(tmp_path)
    proc = regbench("report", str(sweep), "--article", "nndl", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and re.search(r"--article nndl: no run .* ran its experiment nndl_cnn", proc.stderr)
    assert not (sweep / "report").exists()
