"""`regbench eval --ensemble`: the mean of the members' softmaxes, against their saved probabilities averaged here;
runs of another dataset, split seed or class count refused with one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from regbench import run_dir
from tests.conftest import read_json, regbench, trained_sweep


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_sweep(tmp_path_factory.mktemp("ensemble"), "seed=0,1,2", "trainer.max_steps=20",
                         "trainer.eval_every_steps=20")


@pytest.mark.slow
def test_the_ensemble_is_the_mean_of_its_members_softmaxes(seeds: Path, tmp_path: Path, corrupted: Path) -> None:
    runs = [seeds / str(seed) for seed in range(3)]
    probs = []
    for run in runs:
        regbench("eval", str(run), "--save-probs", str(tmp_path / f"{run.name}.npz"))
        saved = np.load(tmp_path / f"{run.name}.npz")
        probs.append(saved["probs"].astype(np.float64))
        labels = saved["labels"]
    line = json.loads(regbench("eval", "--ensemble", *map(str, runs), "--ood", "dataset=mnist5k", "--corruptions",
                               str(corrupted)).stdout)
    mean = np.mean(probs, axis=0)
    assert line["n"] == len(labels) == 500
    assert line["accuracy"] == pytest.approx(np.mean(mean.argmax(1) == labels))
    assert line["nll"] == pytest.approx(-np.log(mean[np.arange(len(labels)), labels]).mean(), rel=1e-5)
    assert line["brier"] == pytest.approx(((mean - np.eye(10)[labels]) ** 2).sum(1).mean(), rel=1e-5)
    assert line["corruptions"]["corruptions"]["same"]["accuracy"] == pytest.approx([line["accuracy"]] * 5)
    for run in runs:  # every member keeps the ensemble's figures, with the members named
        stored = read_json(run / run_dir.EVALUATED)
        assert stored["figures"]["ensemble_test_nll"] == line["nll"]
        assert stored["families"]["ensemble_test"]["members"] == [str(r) for r in runs]
        assert "ensemble_ood_mi_auroc" in stored["figures"] and "ensemble_corruption_error" in stored["figures"]
        assert "stamp" not in stored["families"]["ensemble_corruption"]
    assert "ensemble_test_nll" in regbench("table", str(seeds), "--metric", "ensemble_test_nll").stdout


@pytest.mark.slow
@pytest.mark.parametrize("override, named", [("dataset.split_seed=5001", "dataset.split_seed=5001"),
                                              ("dataset.limit.test=400", "dataset.limit.test=400")])
def test_runs_of_another_dataset_or_split_are_refused(seeds: Path, tmp_path: Path, override: str, named: str) -> None:
    regbench("train", override, "trainer.max_steps=2", "trainer.eval_every_steps=2", f"hydra.run.dir={tmp_path}")
    proc = regbench("eval", "--ensemble", str(seeds / "0"), str(tmp_path), check=False)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert named in proc.stderr and str(tmp_path) in proc.stderr


def test_an_ensemble_of_one_run_or_with_an_analysis_of_one_run_is_refused(tmp_path: Path) -> None:
    proc = regbench("eval", "--ensemble", str(tmp_path), check=False)
    assert proc.returncode != 0 and "at least two different run folders" in proc.stderr
    proc = regbench("eval", "--ensemble", str(tmp_path), str(tmp_path / "x"), "--attack", "fgsm:0.1", check=False)
    assert proc.returncode != 0 and "without --attack" in proc.stderr
