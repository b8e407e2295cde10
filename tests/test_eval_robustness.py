"""`regbench eval` beyond the clean split: corruptions (with a baseline run), OOD detection, sweep folders, and the
figures it keeps in each run folder (eval.json) for tables."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from regbench import metrics
from regbench.errors import UserError
from regbench.inference.ood import ood_split
from regbench.inference.robustness import stored, summarize
from regbench.metrics import detection
from regbench.report.aggregate import direction
from regbench.run_dir import sweep_runs
from tests.conftest import HD_CORRUPTIONS, HD_EXTRA, read_json, regbench, write_corruption_folder


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
    higher = {name: direction(name) for name in (
        "test_acc", "corruption_acc", "extra_corruption_acc", "ood_auroc", "ood_aupr_in", "ood_aupr_out",
        "final_ood_auroc", "test_acc[dataset.limit.test=100]", "test_ece", "ts_test_ece", "corruption_error",
        "all_corruption_error", "corruption_nll", "mce", "relative_mce", "extra_mce", "final_relative_mce", "rel_mce",
        "ood_fpr95", "test_nll[dataset.limit.test=100]")}
    assert [n for n, h in higher.items() if h] == ["test_acc", "corruption_acc", "extra_corruption_acc", "ood_auroc",
                                                   "ood_aupr_in", "ood_aupr_out", "final_ood_auroc",
                                                   "test_acc[dataset.limit.test=100]"]
    assert metrics.metric_of("relative_mce") is metrics.METRICS["relative_mce"]


def _result(accuracy: dict[str, list[float]], clean_error: float, **source) -> dict:
    """A scored result as `regbench eval` keeps it: cells (ECE and NLL unused here), clean error, what it came from."""
    return dict(folder="C", checkpoint="best", stamp=[1, 2], files="f", overrides=[], n=10,
                clean=dict(split="test", error=clean_error), **source,
                corruptions={c: dict(accuracy=a, ece=[0.0] * 5, nll=[0.0] * 5) for c, a in accuracy.items()})


def test_mce_and_relative_mce_against_a_baseline_by_set() -> None:
    ours = _result({"fog": [0.9, 0.8, 0.7, 0.6, 0.5], "spatter": [0.5] * 5, "saturate": [0.7] * 5}, 0.1)
    theirs = _result({"fog": [0.8] * 5, "spatter": [0.6] * 5, "saturate": [0.9] * 5}, 0.05)
    got = summarize(ours, None, theirs, Path("base"))
    # fog: CE = Σ errors 1.5 / 1.0, relative CE = (1.5 − 5 · 0.1) / (1.0 − 5 · 0.05) = 1.0 / 0.75
    # spatter: CE 2.5 / 2.0, relative (2.5 − 0.5) / (2.0 − 0.25); saturate: CE 1.5 / 0.5, relative 1.0 / 0.25
    assert got["baseline"]["corruption_errors"] == pytest.approx({"fog": 1.5, "spatter": 1.25, "saturate": 3.0})
    assert got["baseline"]["relative_corruption_errors"] == pytest.approx(
        {"fog": 1.0 / 0.75, "spatter": 2.0 / 1.75, "saturate": 1.0 / 0.25})
    # fog is one of the 15 (the headline), spatter and saturate are extra: their means apart
    assert got["set"] == "common" and got["names"] == ["fog"] and got["mce"] == pytest.approx(1.5)
    assert got["relative_mce"] == pytest.approx(1.0 / 0.75) and got["mean_corruption_error"] == pytest.approx(0.3)
    extra = got["sets"]["extra"]
    assert extra["names"] == ["spatter", "saturate"] and extra["mce"] == pytest.approx((1.25 + 3.0) / 2)
    assert extra["relative_mce"] == pytest.approx((2.0 / 1.75 + 4.0) / 2)
    assert extra["mean_corruption_error"] == pytest.approx((0.5 + 0.3) / 2)
    every = summarize(ours, "all", theirs, Path("base"))
    assert every["names"] == ["fog", "spatter", "saturate"] and every["mce"] == pytest.approx((1.5 + 1.25 + 3) / 3)
    with pytest.raises(UserError, match="--corruptions-set common: C holds none of those corruptions; it has "
                                        "spatter \(choose among extra, all\)"):
        summarize(_result({"spatter": [0.5] * 5}, 0.1), "common")


def test_a_stored_baseline_stands_only_for_the_same_checkpoint_files_and_overrides(tmp_path: Path) -> None:
    from regbench.inference.robustness import store

    result = summarize(_result({"fog": [0.5] * 5}, 0.1), None)
    store(tmp_path, {**result, "overrides": ["trainer.threads=1", "dataset.limit.test=100"]}, "base")
    same = dict(folder="C", checkpoint="best", stamp=[1, 2], files="f", overrides=["dataset.limit.test=100"],
                split="test")
    assert stored(tmp_path, same)[0]["corruptions"]["fog"]["accuracy"] == [0.5] * 5
    for change, why in ((dict(stamp=[1, 3]), "its checkpoint file changed since it was scored"),
                        (dict(files="g"), "the corruption files changed since it was scored"),
                        (dict(overrides=[]), "it was scored with other overrides"),
                        (dict(folder="D"), "it was scored on another folder"),
                        (dict(split="val"), "its clean error is of another split")):
        assert stored(tmp_path, {**same, **change}) == (None, why)
    assert stored(tmp_path / "none", same) == (None, "it has no readable corruptions.json")


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
        figures = read_json(sweep / run / "eval.json")["figures"]
        assert figures["corruption_error"] == pytest.approx(((1 - accuracy[run]) + 0.9) / 2)
        assert figures["corruption_acc"] == pytest.approx(1 - figures["corruption_error"])
        assert figures["test_acc"] == pytest.approx(accuracy[run]) == line["accuracy"]
        # in-distribution against itself: chance
        assert figures["ood_auroc"] == pytest.approx(0.5) and 0.95 <= figures["ood_fpr95"] <= 0.96
        assert (sweep / run / "corruptions_best.png").read_bytes()[:4] == b"\x89PNG"
    ce_same = (1 - accuracy["1"]) / (1 - accuracy["0"])
    # a folder of other names than the official ones: every file in the mean, which the JSON says
    assert lines[1]["corruptions"]["set"] == "all" and lines[1]["corruptions"]["names"] == ["blank", "same"]
    assert read_json(sweep / "1" / "eval.json")["figures"]["mce"] == pytest.approx((ce_same + 1) / 2)
    assert lines[1]["corruptions"]["baseline"]["corruption_errors"]["same"] == pytest.approx(ce_same)
    assert read_json(sweep / "0" / "eval.json")["figures"]["mce"] == pytest.approx(1.0)
    # the clean images degrade nothing, so the relative CE under `same` and the relative mCE are undefined
    assert lines[1]["corruptions"]["baseline"]["relative_corruption_errors"]["same"] is None
    assert lines[1]["corruptions"]["relative_mce"] is None
    assert "relative_mce" not in read_json(sweep / "1" / "eval.json")["figures"]

    again = regbench(*args)
    assert again.stdout == "" and again.stderr.count("already evaluated with these arguments") == 2
    last = regbench("eval", str(sweep), "--checkpoint", "last")
    assert len(last.stdout.splitlines()) == 2
    assert "final_test_acc" in read_json(sweep / "1" / "eval.json")["figures"]


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (("--output", "x.png"), "--output and --save-probs name one file"),
    (("--baseline", "."), "--baseline compares errors under corruption: add --corruptions DIR"),
    (("--corruptions-set", "all"), "--corruptions-set chooses among the corruptions scored: add --corruptions DIR"),
    (("--corruptions", "{corrupted}", "--baseline", "{sweep}"), "--baseline {sweep} has no checkpoints/best.npz to "
                                                                "score: pass a run folder that has one"),
    (("--corruptions", "{corrupted}", "--corruptions-set", "extra"), "--corruptions-set extra: {corrupted} holds none "
                                                                    "of those corruptions; it has blank, same (choose "
                                                                    "among all)"),
    (("--ood", "dataset=cifar10"), "composes 32x32x3 images but the run's are 32x32x1"),
    (("--corruptions", "{sweep}"), "has no labels.npy"),
])
def test_eval_refuses_in_one_line(sweep: Path, corrupted: Path, args: tuple[str, ...], message: str) -> None:
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    proc = regbench("eval", str(sweep), *(a.format(sweep=sweep, corrupted=corrupted) for a in args), check=False)
    assert proc.returncode == 2 and message.format(sweep=sweep, corrupted=corrupted) in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before  # nothing written


# --- the official names: Hendrycks & Dietterich's 15 in the means, the 4 extra ones apart --------------------------


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """19 files named as the official CIFAR-10-C folder's, made from the first 100 mnist5k test digits."""
    from regbench.config import compose
    from regbench.data import load_splits

    test = load_splits(compose(["dataset=mnist5k"]).dataset).test
    return write_corruption_folder(tmp_path_factory.mktemp("c19"), test.images[:100], test.labels[:100])


def _errors(result: dict, corruption: str) -> list[float]:
    return [1 - a for a in result["corruptions"][corruption]["accuracy"]]


def _ce(ours: dict, theirs: dict, names: list[str]) -> float:
    """mCE written out: per corruption, the errors summed over severities over the baseline's, averaged."""
    return sum(sum(_errors(ours, c)) / sum(_errors(theirs, c)) for c in names) / len(names)


def _relative_ce(ours: dict, theirs: dict, clean: float, base_clean: float, names: list[str]) -> float:
    """Relative mCE written out: per corruption, Σ_s (E_s − E_clean) over the baseline's, averaged."""
    return sum(sum(e - clean for e in _errors(ours, c)) / sum(e - base_clean for e in _errors(theirs, c))
               for c in names) / len(names)


@pytest.mark.slow
def test_mce_covers_the_15_corruptions_and_the_extra_ones_apart(sweep: Path, official: Path) -> None:
    base, run = sweep / "0", sweep / "1"
    args = ("eval", str(run), "--corruptions", str(official), "--baseline", str(base))
    line = json.loads(regbench(*args).stdout)["corruptions"]
    ours, theirs = read_json(run / "corruptions.json"), read_json(base / "corruptions.json")
    clean, base_clean = (1 - read_json(r / "summary.json")["test_acc"] for r in (run, base))
    common, extra = sorted(HD_CORRUPTIONS), sorted(HD_EXTRA)
    assert all(sum(e - base_clean for e in _errors(theirs, c)) > 0 for c in common + extra)  # all defined

    def mean(names: list[str]) -> float:
        return sum(sum(_errors(ours, c)) for c in names) / (5 * len(names))

    figures = read_json(run / "eval.json")["figures"]
    assert line["set"] == ours["set"] == "common" and line["names"] == ours["names"] == common
    assert ours["mean_corruption_error"] == pytest.approx(mean(common)) == figures["corruption_error"]
    assert line["mce"] == figures["mce"] == pytest.approx(_ce(ours, theirs, common))
    assert line["relative_mce"] == figures["relative_mce"] == pytest.approx(
        _relative_ce(ours, theirs, clean, base_clean, common))
    assert ours["sets"]["extra"]["names"] == extra
    assert figures["extra_corruption_error"] == pytest.approx(mean(extra))
    assert figures["extra_mce"] == pytest.approx(_ce(ours, theirs, extra))
    assert figures["extra_relative_mce"] == pytest.approx(_relative_ce(ours, theirs, clean, base_clean, extra))
    # the mean over all 19 files, what regbench reported before, differs and is kept apart under its own name
    assert figures["all_corruption_error"] == pytest.approx(mean(common + extra))
    assert abs(figures["all_corruption_error"] - figures["corruption_error"]) > 0.01
    assert figures["all_mce"] == pytest.approx(_ce(ours, theirs, common + extra))

    every = regbench(*args, "--corruptions-set", "all")
    assert "baseline" not in every.stderr  # its stored scores are current: not scored again
    headline = json.loads(every.stdout)["corruptions"]
    assert headline["set"] == "all" and headline["names"] == sorted(common + extra)
    assert headline["mean_corruption_error"] == pytest.approx(mean(common + extra))
    assert headline["mce"] == pytest.approx(_ce(ours, theirs, common + extra))
    assert read_json(run / "eval.json")["figures"]["mce"] == figures["mce"]  # the names keep their sets


@pytest.mark.slow
def test_a_baseline_trained_further_is_scored_again(sweep: Path, official: Path, tmp_path: Path) -> None:
    from regbench.run_dir.evaluated import checkpoint_stamp

    base, run = tmp_path / "base", sweep / "1"
    train = ("train", "trainer.eval_every_steps=10", f"hydra.run.dir={base}")
    regbench(*train, "trainer.max_steps=20")
    args = ("eval", str(run), "--checkpoint", "last", "--corruptions", str(official), "--baseline", str(base))
    first = regbench(*args)
    assert f"baseline {base}: scoring its last checkpoint on {official} (it has no readable corruptions.json)" \
        in first.stderr
    before = json.loads(first.stdout)["corruptions"]["mce"]

    regbench(*train, "trainer.max_steps=40", "trainer.resume=true")  # the same baseline folder, trained further
    again = regbench(*args)
    assert (f"baseline {base}: scoring its last checkpoint on {official} (its checkpoint file changed since it was "
            f"scored)") in again.stderr
    assert "the final_corruption figures replace those computed with another baseline checkpoint file" in again.stderr
    after = json.loads(again.stdout)["corruptions"]
    theirs = read_json(base / "corruptions.json")
    assert theirs["stamp"] == checkpoint_stamp(base, "last") == after["baseline"]["stamp"]
    common = sorted(HD_CORRUPTIONS)
    assert after["mce"] == pytest.approx(_ce(read_json(run / "corruptions.json"), theirs, common))
    assert after["mce"] != pytest.approx(before)
    assert read_json(run / "eval.json")["figures"]["final_mce"] == after["mce"]
