"""`regbench eval --attack`: FGSM against its gradient computed by hand on a linear model, PGD inside its ball, and on
a trained LeNet-5 the accuracy at ε = 0 equal to the clean one, not rising with ε, and PGD's at most FGSM's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from scipy.special import softmax

from regbench import run_dir
from regbench.errors import UserError
from regbench.inference.attack import Attack, fgsm, parse_attack, pgd
from tests.conftest import read_json, regbench

MEAN, STD = 0.4, 0.2


def _linear(seed: int = 0) -> tuple[paddle.nn.Layer, np.ndarray, np.ndarray]:
    """A linear classifier of 1×2×2 images into 3 classes, and its weights W [3, 4] and bias b [3]."""
    rng = np.random.default_rng(seed)
    weights, bias = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    model = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(4, 3))
    model[1].weight.set_value(weights.T)  # Paddle's Linear computes x @ weight
    model[1].bias.set_value(bias)
    model.eval()
    return model, weights, bias


def _normalize(pixels: paddle.Tensor) -> paddle.Tensor:
    return (pixels - MEAN) / STD


def test_fgsm_moves_each_pixel_by_eps_along_the_sign_of_the_gradient_by_hand() -> None:
    model, weights, bias = _linear()
    rng = np.random.default_rng(1)
    pixels = rng.uniform(0.3, 0.7, (5, 1, 2, 2)).astype(np.float32)  # 0.1 from every edge: nothing clipped
    labels = np.array([0, 1, 2, 1, 0])
    adversarial = fgsm(model, paddle.to_tensor(pixels), paddle.to_tensor(labels), 0.1, _normalize).numpy()
    # cross-entropy of z = W (x − m)/s + b: ∂/∂x = Wᵀ (softmax(z) − onehot(y)) / s, per sample (the mean's 1/N
    # changes no sign)
    x = pixels.reshape(5, 4).astype(np.float64)
    z = (x - MEAN) / STD @ weights.T + bias
    gradient = (softmax(z, axis=1) - np.eye(3)[labels]) @ weights / STD
    assert np.allclose(adversarial.reshape(5, 4) - x, 0.1 * np.sign(gradient), atol=1e-6)


def test_fgsm_clips_to_valid_pixels_and_pgd_stays_in_its_ball() -> None:
    model, _, _ = _linear()
    pixels = paddle.to_tensor(np.array([[[[0.0, 1.0], [0.05, 0.97]]]] * 4, np.float32))
    labels = paddle.to_tensor(np.array([0, 1, 2, 0]))
    adversarial = fgsm(model, pixels, labels, 0.2, _normalize).numpy()
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    attacked = pgd(model, pixels, labels, parse_attack("pgd:0.1:7"), _normalize, np.random.default_rng(0)).numpy()
    assert np.abs(attacked - pixels.numpy()).max() <= 0.1 + 1e-6 and attacked.min() >= 0 and attacked.max() <= 1


def test_attack_specs() -> None:
    assert parse_attack("fgsm:0.03") == Attack("fgsm:0.03", "fgsm", 0.03, 1, 0.0075)
    assert parse_attack("pgd:0.1:10") == Attack("pgd:0.1:10", "pgd", 0.1, 10, 0.025)
    assert parse_attack("pgd:0.1:10:0.01").step == 0.01
    for bad in ("fgsm", "fgsm:2", "pgd:0.1", "pgd:0.1:0", "cw:0.1", "fgsm:x", "fgsm:0.1:3"):
        with pytest.raises(UserError, match="fgsm:EPS or pgd:EPS:STEPS"):
            parse_attack(bad)


@pytest.mark.slow
def test_on_a_trained_lenet5_accuracy_falls_with_eps_and_pgd_is_stronger(tmp_path: Path) -> None:
    regbench("train", "model=lenet5_nndl", "trainer.max_steps=60", "trainer.eval_every_steps=60",
             f"hydra.run.dir={tmp_path}")
    epsilons = ("0", "0.02", "0.05", "0.1", "0.2")
    attacks = [f"fgsm:{eps}" for eps in epsilons] + ["pgd:0:3", "pgd:0.05:10", "pgd:0.1:10"]
    line = json.loads(regbench("eval", str(tmp_path), *[f"--attack={a}" for a in attacks]).stdout)
    figures = read_json(tmp_path / run_dir.EVALUATED)["figures"]
    assert figures["fgsm_0_test_acc"] == figures["test_acc"] == line["accuracy"] > 0.5
    assert figures["pgd_0_3_test_acc"] == figures["test_acc"]
    accuracy = [figures[f"fgsm_{eps}_test_acc"] for eps in epsilons]
    assert accuracy == sorted(accuracy, reverse=True) and accuracy[-1] < accuracy[0]
    assert figures["pgd_0.05_10_test_acc"] <= figures["fgsm_0.05_test_acc"]
    assert figures["pgd_0.1_10_test_acc"] <= figures["fgsm_0.1_test_acc"]
    assert line["attacks"]["fgsm:0.1"]["ece"] == figures["fgsm_0.1_test_ece"]
    proc = regbench("eval", str(tmp_path), "--attack", "fgsm:3", check=False)
    assert proc.returncode != 0 and "fgsm:EPS or pgd:EPS:STEPS" in proc.stderr
