"""`regbench eval` beyond the clean split: corruptions (with a baseline run), OOD detection, sweep folders, and the
figures it keeps in each run folder (eval.json) for tables."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from regbench import metrics
from regbench.errors import UserError
from regbench.inference.evaluate import sweep_runs
from regbench.inference.ood import detection, ood_split
from regbench.inference.robustness import relative
from regbench.inference.stored import record_arguments, scored_before, store_figures
from tests.conftest import read_json, regbench


def _logits(top: list[float]) -> np.ndarray:
    """[N, 3] logits whose softmax's maximum is `top` (each ≥ 1/3): the class-0 probability, the rest split evenly
    (the log of probabilities is logits of them)."""
    top = np.asarray(top)
    return np.log(np.stack([top, (1 - top) / 2, (1 - top) / 2], axis=1))


def test_ood_detection_matches_hand_counts() -> None:
    # in-distribution 0.9 0.8 0.7 0.6, OOD 0.75 0.5 0.4; by score: I I O I I O O
    got = detection(_logits([0.9, 0.8, 0.7, 0.6]), _logits([0.75, 0.5, 0.4]))
    assert got["auroc"] == pytest.approx(10 / 12)  # pairs (in, out) with in > out: 3 + 3 + 2 + 2 of 12
    assert got["aupr_in"] == pytest.approx((1 / 1 + 2 / 2 + 3 / 4 + 4 / 5) / 4)  # precision at each in-sample
    assert got["aupr_out"] == pytest.approx((1 / 1 + 2 / 2 + 3 / 5) / 3)  # from the lowest score up
    assert got["fpr95"] == pytest.approx(1 / 3)  # 95% of 4 in-samples needs all 4: threshold 0.6 passes 0.75


def test_ood_detection_counts_ties_half_and_identical_sets_as_chance() -> None:
    same = _logits([0.9, 0.7, 0.5, 0.4])
    got = detection(same, same)
    assert got["auroc"] == pytest.approx(0.5)
    assert got["fpr95"] == pytest.approx(1.0)  # every in-sample accepted accepts every equal OOD sample
    assert detection(_logits([0.6]), _logits([0.6]))["auroc"] == pytest.approx(0.5)


def test_ood_detection_ranks_confident_samples_whose_float32_probabilities_tie() -> None:
    from scipy.special import softmax

    # top logits lead by 30 and by 20; the larger top logit is the OOD sample's: the score is no plain logit
    inside, outside = np.array([[10.0, -20.0, -20.0]], np.float32), np.array([[20.0, 0.0, 0.0]], np.float32)
    # the maximum softmax probability in float32 cannot tell them apart: both are exactly 1
    assert softmax(inside, axis=1).astype(np.float32).max() == softmax(outside, axis=1).astype(np.float32).max() == 1
    got = detection(inside, outside)
    assert got["auroc"] == 1.0 and got["aupr_in"] == 1.0 and got["aupr_out"] == 1.0 and got["fpr95"] == 0.0
    assert detection(outside, inside)["auroc"] == 0.0  # the order, not a tie broken by position


def test_ood_split_refuses_other_keys_and_other_image_shapes() -> None:
    from omegaconf import OmegaConf

    run = OmegaConf.create({"image_size": 32, "channels": 1})
    with pytest.raises(UserError, match="give dataset overrides only"):
        ood_split(run, "model=mynet")
    with pytest.raises(UserError, match="composes 32x32x3 images but the run's are 32x32x1"):
        ood_split(run, "dataset=synthetic")
    name, split = ood_split(OmegaConf.create({"image_size": 16, "channels": 3}),
                            "dataset=synthetic dataset.image_size=16 dataset.test_size=8 dataset.train_size=40")
    assert name == "synthetic" and split.images.shape == (8, 3, 16, 16) and not split.labels.any()


def test_eval_figures_have_directions_for_tables() -> None:
    higher = {name: metrics.metric_of(name).higher_is_better for name in (
        "test_acc", "corruption_acc", "ood_auroc", "ood_aupr_in", "ood_aupr_out", "final_ood_auroc",
        "test_ece", "ts_test_ece", "corruption_error", "corruption_nll", "rel_mce", "ood_fpr95")}
    assert [n for n, h in higher.items() if h] == ["test_acc", "corruption_acc", "ood_auroc", "ood_aupr_in",
                                                   "ood_aupr_out", "final_ood_auroc"]


def test_eval_json_merges_and_arguments_are_remembered(tmp_path: Path) -> None:
    store_figures(tmp_path, {"test_acc": 0.5, "test_ece": 0.1})
    store_figures(tmp_path, {"test_acc": 0.6, "ood_auroc": 0.7})
    assert read_json(tmp_path / "eval.json") == {"test_acc": 0.6, "test_ece": 0.1, "ood_auroc": 0.7}
    args = {"checkpoint": "best", "ood": None}
    assert not scored_before(tmp_path, args)
    record_arguments(tmp_path, args)
    record_arguments(tmp_path, args)
    assert scored_before(tmp_path, args) and not scored_before(tmp_path, {**args, "ood": "dataset=cifar100"})
    assert read_json(tmp_path / "eval_args.json") == [args]


def test_relative_corruption_errors_against_a_baseline() -> None:
    ours = {"corruptions": {"fog": {"accuracy": [0.9, 0.8, 0.7, 0.6, 0.5]}}}
    theirs = {"corruptions": {"fog": {"accuracy": [0.8] * 5}}}
    got = relative(ours, theirs, Path("base"))
    assert got["corruption_errors"]["fog"] == pytest.approx(1.5 / 1.0) and got["mce"] == pytest.approx(1.5)


def test_sweep_runs_are_the_numbered_run_folders(tmp_path: Path) -> None:
    for name in ("10", "2", "x", "3"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
    (tmp_path / "4").mkdir()
    assert [p.name for p in sweep_runs(tmp_path)] == ["2", "3", "10"]
    assert sweep_runs(tmp_path / "2") is None
    with pytest.raises(UserError, match="neither a run folder .* nor a sweep folder"):
        sweep_runs(tmp_path / "4")


# --- as a user runs it: a real sweep of two tiny LeNet runs on mnist5k ------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    regbench("train", "-m", "seed=0,1", "trainer.max_steps=20", "trainer.eval_every_steps=10",
             f"hydra.sweep.dir={folder}")
    return folder


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mnist5k test split in the CIFAR-10-C layout: `same` (the clean images at every severity) and `blank`."""
    from regbench.config import compose
    from regbench.data import load_splits

    test = load_splits(compose(["dataset=mnist5k"]).dataset).test
    folder = tmp_path_factory.mktemp("c")
    images = test.images.transpose(0, 2, 3, 1)
    np.save(folder / "same.npy", np.concatenate([images] * 5))
    np.save(folder / "blank.npy", np.zeros((5 * len(test), 32, 32, 1), np.uint8))
    np.save(folder / "labels.npy", np.tile(test.labels, 5))
    return folder


@pytest.mark.slow
def test_eval_scores_corruptions_ood_and_every_run_of_a_sweep(sweep: Path, corrupted: Path) -> None:
    (sweep / "2" / ".hydra").mkdir(parents=True)  # a run that never finished
    (sweep / "2" / ".hydra" / "config.yaml").write_text((sweep / "1" / ".hydra" / "config.yaml").read_text())
    args = ("eval", str(sweep), "--corruptions", str(corrupted), "--baseline", str(sweep / "0"),
            "--ood", "dataset=mnist5k")
    proc = regbench(*args)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["run"]).name for r in lines] == ["0", "1"]
    assert f"{sweep / '2'}: skipped, not completed (missing)" in proc.stderr
    accuracy = {run: read_json(sweep / run / "summary.json")["test_acc"] for run in ("0", "1")}
    for run, line in zip(("0", "1"), lines):
        cells = read_json(sweep / run / "corruptions.json")["corruptions"]
        # the clean images at every severity score as the test split did in training
        assert cells["same"]["accuracy"] == pytest.approx([accuracy[run]] * 5)
        # a blank image gets one class everywhere: a tenth of the balanced test split
        assert cells["blank"]["accuracy"] == pytest.approx([0.1] * 5)
        figures = read_json(sweep / run / "eval.json")
        assert figures["corruption_error"] == pytest.approx(((1 - accuracy[run]) + 0.9) / 2)
        assert figures["corruption_acc"] == pytest.approx(1 - figures["corruption_error"])
        assert figures["test_acc"] == pytest.approx(accuracy[run]) == line["accuracy"]
        # in-distribution against itself: chance
        assert figures["ood_auroc"] == pytest.approx(0.5) and 0.95 <= figures["ood_fpr95"] <= 0.96
        assert (sweep / run / "corruptions_best.png").read_bytes()[:4] == b"\x89PNG"
    ce_same = (1 - accuracy["1"]) / (1 - accuracy["0"])
    assert read_json(sweep / "1" / "eval.json")["rel_mce"] == pytest.approx((ce_same + 1) / 2)
    assert lines[1]["corruptions"]["baseline"]["corruption_errors"]["same"] == pytest.approx(ce_same)
    assert read_json(sweep / "0" / "eval.json")["rel_mce"] == pytest.approx(1.0)

    again = regbench(*args)
    assert again.stdout == "" and again.stderr.count("already evaluated with these arguments") == 2
    last = regbench("eval", str(sweep), "--checkpoint", "last")
    assert len(last.stdout.splitlines()) == 2
    assert "final_test_acc" in read_json(sweep / "1" / "eval.json")


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (("--output", "x.png"), "--output and --save-probs name one file"),
    (("--baseline", "."), "--baseline compares errors under corruption: add --corruptions DIR"),
    (("--ood", "dataset=cifar10"), "composes 32x32x3 images but the run's are 32x32x1"),
    (("--corruptions", "{sweep}"), "has no labels.npy"),
])
def test_eval_refuses_in_one_line(sweep: Path, args: tuple[str, ...], message: str) -> None:
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    proc = regbench("eval", str(sweep), *(a.format(sweep=sweep) for a in args), check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before  # nothing written
