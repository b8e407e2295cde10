"""`regbench eval --mc-samples N`: Monte-Carlo regularizers, against evaluation mode and against the mean of single
stochastic passes written out here; identical on a rerun; refused without stochastic layers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from scipy.special import softmax

from regbench import metrics, run_dir
from tests.conftest import read_json, regbench, trained_sweep


@pytest.fixture(scope="module")
def dropout_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_sweep(tmp_path_factory.mktemp("mc"), "seed=0,1", "reg=dropout", "trainer.max_steps=20",
                         "trainer.eval_every_steps=20")


def _figures(run: Path) -> dict:
    return read_json(run / run_dir.EVALUATED)["figures"]


@pytest.mark.slow
def test_one_pass_with_every_layer_in_evaluation_mode_is_the_plain_evaluation(dropout_sweep: Path) -> None:
    from regbench.inference.mc import mc_passes, stochastic
    from regbench.inference.scorer import scorer, split_of
    from regbench.inference.trained_run import saved_config

    run = dropout_sweep / "0"
    cfg = saved_config(run, [])
    scored = scorer(cfg, run, "best")[0]
    split = split_of(cfg, None)[1]
    plain = scored(split)
    passes, labels = mc_passes(scored, split, 1, noise_seed=0, mode=paddle.nn.Layer.eval)
    figures = metrics.averaged(metrics.mean_log_probs(passes), labels)
    for name in ("accuracy", "ece", "nll", "brier"):
        assert figures[name] == pytest.approx(plain.figures[name], abs=1e-6), name
    assert figures["aurc"] == pytest.approx(metrics.aurc(metrics.log_softmax(plain.logits), plain.labels))
    # the stochastic mode does drop: its one pass is not the plain evaluation
    assert not np.allclose(mc_passes(scored, split, 1, noise_seed=0, mode=stochastic)[0][0],
                           metrics.log_softmax(plain.logits))


@pytest.mark.slow
def test_mc_is_the_mean_of_single_stochastic_passes_written_out(dropout_sweep: Path) -> None:
    from regbench.inference.trained_run import load_model, saved_config
    from regbench.scoring import eval_loader

    run, samples = dropout_sweep / "1", 3
    line = json.loads(regbench("eval", str(run), "--mc-samples", str(samples), "trainer.eval_batch_size=500").stdout)
    cfg = saved_config(run, ["trainer.eval_batch_size=500"])
    from regbench.inference.scorer import split_of

    (images, labels), = list(eval_loader(cfg.dataset, cfg.trainer, split_of(cfg, None)[1]).epoch(seed=None))
    model = load_model(cfg, run, "best")
    dropouts = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.Dropout)]
    assert dropouts and all(layer.p == 0.5 for layer in dropouts)
    probs = []
    for index in range(samples):
        # the documented seed of pass i: derive_seed(seeds.noise, 2, i), NumPy's SeedSequence less its top bit
        paddle.seed(int(np.random.SeedSequence([cfg.seeds.noise, 2, index]).generate_state(1)[0] >> 1))
        model.eval()
        for layer in dropouts:
            layer.training = True
        with paddle.no_grad():
            probs.append(softmax(model(images).numpy().astype(np.float64), axis=1))
    mean, y = np.mean(probs, axis=0), labels.numpy()
    figures = _figures(run)
    assert figures[f"mc{samples}_test_acc"] == pytest.approx(np.mean(mean.argmax(1) == y)) == line["mc"]["accuracy"]
    assert figures[f"mc{samples}_test_nll"] == pytest.approx(-np.log(mean[np.arange(len(y)), y]).mean(), rel=1e-5)
    assert figures[f"mc{samples}_test_brier"] == pytest.approx(((mean - np.eye(10)[y]) ** 2).sum(1).mean(), rel=1e-5)
    assert not np.allclose(probs[0], probs[1])  # the passes drew different masks


@pytest.mark.slow
def test_mc_figures_are_identical_across_invocations_and_tabled(dropout_sweep: Path) -> None:
    args = ("eval", str(dropout_sweep / "0"), "--mc-samples", "2", "--ood", "dataset=mnist5k")
    first = json.loads(regbench(*args).stdout)["mc"]
    stored = {k: v for k, v in _figures(dropout_sweep / "0").items() if k.startswith("mc2_")}
    assert json.loads(regbench(*args).stdout)["mc"] == first
    assert {k: v for k, v in _figures(dropout_sweep / "0").items() if k.startswith("mc2_")} == stored
    assert {"mc2_test_ece", "mc2_test_aece", "mc2_test_aurc", "mc2_ood_mi_auroc",
            "mc2_ood_entropy_auroc"} <= set(stored)
    regbench("eval", str(dropout_sweep / "1"), "--mc-samples", "2")
    assert "mc2_test_ece" in regbench("table", str(dropout_sweep), "--metric", "mc2_test_ece").stdout


@pytest.mark.slow
def test_mc_scores_every_corruption_with_the_same_passes(dropout_sweep: Path, corrupted: Path) -> None:
    line = json.loads(regbench("eval", str(dropout_sweep / "1"), "--mc-samples", "2", "--corruptions",
                               str(corrupted)).stdout)["mc"]
    cells = line["corruptions"]["corruptions"]
    # the clean images at every severity: the same masks on the same batches give the clean split's MC figures
    assert cells["same"]["accuracy"] == pytest.approx([line["accuracy"]] * 5)
    assert cells["same"]["nll"] == pytest.approx([line["nll"]] * 5)
    figures = _figures(dropout_sweep / "1")
    error = np.mean([1 - a for cell in cells.values() for a in cell["accuracy"]])
    assert figures["mc2_corruption_error"] == pytest.approx(error)
    assert figures["corruption_error"] != figures["mc2_corruption_error"]


@pytest.mark.slow
def test_a_model_without_stochastic_layers_is_refused(tmp_path: Path) -> None:
    regbench("train", "trainer.max_steps=2", "trainer.eval_every_steps=2", f"hydra.run.dir={tmp_path}")
    proc = regbench("eval", str(tmp_path), "--mc-samples", "4", check=False)
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0
    assert "has no stochastic layer" in proc.stderr
    proc = regbench("eval", str(tmp_path), "--mc-samples", "0", check=False)
    assert proc.returncode != 0 and "at least 1" in proc.stderr
