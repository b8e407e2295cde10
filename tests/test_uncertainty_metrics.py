"""The metrics of the uncertainty literature (adaptive ECE, AURC, selective risk, OOD scores by entropy and mutual
information), each against its formula written out here, and none computed through float32 softmax saturation."""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from scipy.stats import entropy

from regbench import metrics, run_dir
from tests.conftest import read_json, regbench


def _sample(n: int = 700, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(float64 log-probabilities [n, classes] of random logits, labels agreeing with the top class ~60%)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, (n, classes))
    labels = np.where(rng.random(n) < 0.6, logits.argmax(axis=1), rng.integers(0, classes, n))
    return log_softmax(logits, axis=1), labels


def _adaptive_ece_by_loop(log_probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    samples = sorted(range(len(labels)), key=lambda i: max(log_probs[i]))  # Python's sort is stable
    total = 0.0
    for b in range(bins):
        members = samples[b * len(samples) // bins:(b + 1) * len(samples) // bins]
        confidence = sum(math.exp(max(log_probs[i])) for i in members)
        correct = sum(int(np.argmax(log_probs[i]) == labels[i]) for i in members)
        total += abs(correct - confidence)
    return total / len(samples)


def _risks_by_loop(log_probs: np.ndarray, labels: np.ndarray) -> list[float]:
    """The error among the k most confident, k = 1..N (no ties in the confidences)."""
    wrong = [int(np.argmax(log_probs[i]) != labels[i]) for i in
             sorted(range(len(labels)), key=lambda i: -max(log_probs[i]))]
    return [sum(wrong[:k]) / k for k in range(1, len(wrong) + 1)]


@pytest.mark.parametrize("n", [700, 31, 15])
def test_adaptive_ece_matches_equal_mass_bins_written_out(n: int) -> None:
    log_probs, labels = _sample(n)
    assert metrics.adaptive_ece(log_probs, labels) == pytest.approx(_adaptive_ece_by_loop(log_probs, labels))


def test_adaptive_ece_differs_from_equal_width_ece_when_confidences_pile_up() -> None:
    log_probs, labels = _sample(700)
    sharp = log_softmax(log_probs * 6, axis=1)  # confidences near 1: the equal-width bins hold nearly every sample
    probs = np.exp(sharp)
    assert metrics.adaptive_ece(sharp, labels) != pytest.approx(metrics.ece(probs, labels), abs=1e-3)


def test_aurc_and_selective_risk_match_the_risk_coverage_curve_written_out() -> None:
    log_probs, labels = _sample(35)
    risks = _risks_by_loop(log_probs, labels)
    assert metrics.aurc(log_probs, labels) == pytest.approx(sum(risks) / len(risks))
    assert metrics.selective_risk(log_probs, labels) == pytest.approx(risks[28 - 1])  # 80% of 35: the 28 surest


def test_aurc_counts_tied_confidences_as_the_mean_over_their_orders() -> None:
    # four samples of one confidence (two wrong) after one surer right one: the curve's expected value over the
    # 4! orders of the tied ones
    log_probs = np.log(np.array([[0.9, 0.1]] + [[0.6, 0.4]] * 4))
    labels = np.array([0, 0, 1, 0, 1])
    expected = []
    for order in itertools.permutations([1, 2, 3, 4]):
        wrong = [0] + [int(labels[i] != 0) for i in order]
        expected.append(sum(sum(wrong[:k]) / k for k in range(1, 6)) / 5)
    assert metrics.aurc(log_probs, labels) == pytest.approx(np.mean(expected))
    shuffled = np.array([3, 0, 4, 2, 1])
    assert metrics.aurc(log_probs[shuffled], labels[shuffled]) == pytest.approx(metrics.aurc(log_probs, labels))


def test_directions_of_the_uncertainty_metrics() -> None:
    for figure in ("test_aece", "mc8_test_aece", "test_aurc", "ensemble_test_risk80"):
        assert metrics.metric_of(figure) is metrics.METRICS[figure.rsplit("_", 1)[1]]
    assert metrics.metric_of("test_ece") is metrics.METRICS["ece"]
    assert not metrics.metric_of("test_aece").higher_is_better
    assert not metrics.metric_of("test_aurc").higher_is_better
    assert not metrics.metric_of("test_risk80").higher_is_better
    assert metrics.metric_of("ood_mi_auroc").higher_is_better


def test_entropy_and_mutual_information_match_scipy() -> None:
    rng = np.random.default_rng(1)
    passes = log_softmax(rng.normal(0, 2, (6, 40, 4)), axis=2)
    probs = np.exp(passes)
    mean = probs.mean(axis=0)
    assert -metrics.OOD_SCORES["entropy"](np.log(mean)) == pytest.approx(entropy(mean, axis=1))
    expected = entropy(mean, axis=1) - np.mean([entropy(p, axis=1) for p in probs], axis=0)
    assert metrics.mutual_information(passes) == pytest.approx(expected)
    assert metrics.mean_log_probs(passes) == pytest.approx(np.log(mean))
    assert metrics.mutual_information(np.stack([passes[0]] * 3)) == pytest.approx(0, abs=1e-12)


def test_no_score_ties_through_float32_saturation() -> None:
    margin30, margin20 = np.array([[30.0, 0.0, 0.0]], np.float32), np.array([[20.0, 0.0, 0.0]], np.float32)
    assert softmax(margin30, axis=1).astype(np.float32).max() == softmax(margin20, axis=1).astype(np.float32).max() == 1
    for score in ("msp", "entropy"):
        assert metrics.detection(margin30, margin20, score)["auroc"] == 1.0, score
        assert metrics.detection(margin20, margin30, score)["auroc"] == 0.0, score
    both = metrics.log_softmax(np.concatenate([margin30, margin20]))
    # the surer sample right, the other wrong: risks 0 then 1/2; the other way round: 1 then 1/2
    assert metrics.aurc(both, np.array([0, 1])) == pytest.approx(0.25)
    assert metrics.aurc(both, np.array([1, 0])) == pytest.approx(0.75)
    assert metrics.selective_risk(both, np.array([0, 1]), coverage=0.5) == 0.0
    passes = np.stack([both, metrics.log_softmax(np.array([[30.0, 0.0, 1.0], [20.0, 0.0, 1.0]]))])
    information = metrics.mutual_information(passes)
    assert information[0] < information[1]


@pytest.mark.slow
def test_eval_stores_the_ranked_metrics_and_table_compares_in_them(tmp_path: Path) -> None:
    regbench("train", "-m", "seed=0,1", "trainer.max_steps=10", "trainer.eval_every_steps=10",
             f"hydra.sweep.dir={tmp_path}")
    lines = [json.loads(line) for line in regbench("eval", str(tmp_path)).stdout.splitlines()]
    assert len(lines) == 2 and all({"aece", "aurc", "risk80"} <= set(line) for line in lines)
    figures = read_json(Path(lines[0]["run"]) / run_dir.EVALUATED)["figures"]
    assert figures["test_aurc"] == lines[0]["aurc"] and figures["test_aece"] == lines[0]["aece"]
    # the 80% surest samples hold at most all the errors
    assert 0 <= figures["test_risk80"] <= (1 - lines[0]["accuracy"]) / 0.8 + 1e-9
    assert "test_aurc" in regbench("table", str(tmp_path), "--metric", "test_aurc").stdout
