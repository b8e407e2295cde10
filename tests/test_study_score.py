"""The scoring stage of `regbench reproduce`: every completed run of a sweep scored as the article's `evaluate` section
declares (each split, the probabilities saved, corruptions and OOD on the first split), nothing scored twice."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import read_json, regbench, write_corruption_folder
from regbench.articles import Corruptions, Evaluate
from regbench.study.score import requests, score_sweep

SYNTHETIC = ["dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64", "model=mynet"]


def test_the_analyses_go_with_the_first_split_and_every_split_saves_its_probabilities(tmp_path: Path) -> None:
    evaluate = Evaluate(checkpoint="last", splits=("test", "val"), ood=(("dataset=synthetic", "dataset.seed=3"),))
    first, second = requests(evaluate, tmp_path, tmp_path / "C")
    assert (first.split, first.checkpoint, first.corruptions, first.ood) == ("test", "last", tmp_path / "C",
                                                                             "dataset=synthetic dataset.seed=3")
    assert (second.split, second.corruptions, second.ood) == ("val", None, None)
    assert (first.save_probs, second.save_probs) == (tmp_path / "probs_test_last.npz", tmp_path / "probs_val_last.npz")


@pytest.mark.slow
def test_a_sweep_is_scored_as_declared_and_a_second_pass_scores_nothing(tmp_path: Path) -> None:
    from regbench.config import compose
    from regbench.data import load_splits

    regbench("train", "-m", *SYNTHETIC, "trainer.max_steps=3", "seed=0,1", "hydra.sweep.dir=sweep", cwd=tmp_path)
    test = load_splits(compose(SYNTHETIC).dataset).test
    folder = write_corruption_folder(tmp_path / "C", test.images[:20], test.labels[:20], names=("fog", "snow"))
    evaluate = Evaluate(metrics=("test_acc",), corruptions=Corruptions(folder=str(folder)),
                        ood=(("dataset=synthetic", "dataset.test_size=32"),))
    seen: list[tuple[int, int, str]] = []
    sweep = tmp_path / "sweep"
    # two runs at once, each process on a core of its own (one after another on a one-core machine)
    assert score_sweep(sweep, evaluate, print, lambda i, n, run: seen.append((i, n, run.name)), jobs=2) == 2
    assert sorted(seen) == [(1, 2, "0"), (2, 2, "1")] or sorted(seen) == [(1, 2, "1"), (2, 2, "0")]
    for run in ("0", "1"):
        stored = read_json(sweep / run / "eval.json")["figures"]
        assert {"test_acc", "corruption_acc", "ood_auroc"} <= set(stored)
        with np.load(sweep / run / "probs_test_best.npz") as saved:
            assert saved["probs"].shape == (64, 10) and abs(stored["test_acc"] - np.mean(
                saved["probs"].argmax(axis=1) == saved["labels"])) < 1e-9
        assert read_json(sweep / run / "corruptions.json")["n"] == 20
    assert score_sweep(sweep, evaluate, print, lambda i, n, run: None) == 0
    (sweep / "1" / "probs_test_best.npz").unlink()  # a saved file gone: that run is scored again, alone
    assert score_sweep(sweep, evaluate, print, lambda i, n, run: None) == 1
