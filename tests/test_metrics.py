"""Metrics of predicted probabilities against values computed independently: by hand on a tiny example, and ECE by a
plain loop over bins; their sums pooled over batches and ranks; their directions; the names of their figures; adding
one as the docs show; temperature scaling."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

from conftest import REPO, ece_by_loop, read_json, read_jsonl
from regbench import metrics
from regbench.errors import UserError
from regbench.inference.temperature import fit_temperature, scaled_probs

# five samples, three classes: top-1 confidences 0.7 (hit), 0.6 (miss), 0.4 (hit), 0.5 (miss), 0.72 (miss)
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1], [0.72, 0.18, 0.1]],
                 dtype=np.float32)
LABELS = np.array([0, 2, 2, 1, 1])


def test_accuracy_nll_and_brier_by_hand() -> None:
    assert metrics.accuracy(PROBS, LABELS) == pytest.approx(2 / 5)
    true_class = [0.7, 0.3, 0.4, 0.4, 0.18]
    assert metrics.nll(PROBS, LABELS) == pytest.approx(-sum(math.log(p) for p in true_class) / 5, rel=1e-6)
    # Σ_c (p_c − y_c)² per sample, then the mean: sum over classes, not averaged over them
    per_sample = [0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2, 0.1 ** 2 + 0.6 ** 2 + 0.7 ** 2, 0.3 ** 2 + 0.3 ** 2 + 0.6 ** 2,
                  0.5 ** 2 + 0.6 ** 2 + 0.1 ** 2, 0.72 ** 2 + 0.82 ** 2 + 0.1 ** 2]
    assert per_sample == pytest.approx([0.14, 0.86, 0.54, 0.62, 1.2008])
    assert metrics.brier(PROBS, LABELS) == pytest.approx(3.3608 / 5, rel=1e-6)


def test_ece_by_hand() -> None:
    # 15 bins of width 1/15: 0.7 and 0.72 fall in [10/15, 11/15) (one hit: accuracy 0.5, mean confidence 0.71),
    # 0.6 = 9/15 opens [9/15, 10/15), 0.4 = 6/15 opens [6/15, 7/15), 0.5 in [7/15, 8/15)
    expected = 2 / 5 * abs(0.5 - 0.71) + 1 / 5 * (0.6 + 0.6 + 0.5)
    assert metrics.ece(PROBS, LABELS) == pytest.approx(expected, rel=1e-6)
    bins = metrics.calibration_bins(PROBS, LABELS)
    assert bins.shape == (3, 15) and list(np.flatnonzero(bins[0])) == [6, 7, 9, 10]
    assert bins[:, 10] == pytest.approx([2, 1.42, 1])
    # a confidence of exactly 1 belongs to the last bin
    certain = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert metrics.calibration_bins(certain, np.array([0, 0]))[:, 14] == pytest.approx([2, 2, 1])
    assert metrics.ece(certain, np.array([0, 0])) == pytest.approx(0.5)


def random_predictions(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(classes, 0.3), size=n).astype(np.float32)
    # labels that agree with the top class more often than chance, less often than the confidence says
    labels = np.where(rng.random(n) < 0.6, probs.argmax(axis=1), rng.integers(0, classes, n))
    return probs, labels


def test_ece_matches_a_plain_loop_over_bins() -> None:
    for seed in range(3):
        probs, labels = random_predictions(2000, 10, seed)
        assert metrics.ece(probs, labels) == pytest.approx(ece_by_loop(probs, labels), rel=1e-9, abs=1e-12)


def test_tallies_add_over_batches_and_ranks() -> None:
    probs, labels = random_predictions(1001, 10, seed=7)
    whole = metrics.tally(probs, labels)
    assert whole.shape == (metrics.tally_size(),)
    pooled = metrics.tally(probs[0::2], labels[0::2]) + metrics.tally(probs[1::2], labels[1::2])  # two ranks
    assert pooled == pytest.approx(whole)
    figures = metrics.from_tally(pooled)
    for name in ("accuracy", "ece", "nll", "brier"):
        assert figures[name] == pytest.approx(metrics.METRICS[name].function(probs, labels), rel=1e-12)
    # the mean of the ranks' ECEs is another (wrong) figure: ECE is not additive, its bins are
    per_rank = [metrics.ece(probs[r::2], labels[r::2]) for r in (0, 1)]
    assert abs(np.mean(per_rank) - figures["ece"]) > 1e-3


def test_nll_of_a_probability_that_underflowed_is_finite() -> None:
    probs = np.array([[1.0, 0.0]], dtype=np.float32)
    assert metrics.nll(probs, np.array([1])) == pytest.approx(-math.log(np.finfo(np.float32).tiny))


def softmax32(logits: np.ndarray) -> np.ndarray:
    """float32 probabilities of logits, as the scoring pass has them."""
    return scipy.special.softmax(logits.astype(np.float64), axis=1).astype(np.float32)


def test_nll_of_logits_is_not_capped_by_float32() -> None:
    logits, labels = np.array([[0.0, 200.0]], np.float32), np.array([0])
    assert softmax32(logits)[0, 0] == 0  # its float32 probability: the NLL of probabilities alone is capped (87.3)
    assert metrics.logit_log_losses(logits, labels)[0] == 200.0
    assert metrics.from_tally(metrics.tally(softmax32(logits), labels, logits=logits))["nll"] == 200.0
    # a near-certain right answer: −log(1 − e^−40) = e^−40, where float32 probabilities give exactly 0
    assert metrics.logit_log_losses(np.array([[40.0, 0.0]]), np.array([0]))[0] == pytest.approx(math.exp(-40),
                                                                                                 rel=1e-12)


def test_nll_of_logits_matches_scipy_log_softmax() -> None:
    rng = np.random.default_rng(11)
    for scale in (1.0, 30.0, 1000.0):  # ordinary logits, saturated ones, far beyond float32's exp range
        logits = (scale * rng.normal(size=(500, 10))).astype(np.float32)
        labels = rng.integers(0, 10, 500)
        expected = -scipy.special.log_softmax(logits.astype(np.float64), axis=1)[np.arange(500), labels]
        got = metrics.logit_log_losses(logits, labels)
        assert got.dtype == np.float64
        # scipy's log(Σ exp) rounds a near-certain right answer's tiny NLL to float64's spacing near 1 (2e-16):
        # ours keeps it (the e^−40 above), hence the absolute tolerance
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
        probs = softmax32(logits)
        figures = metrics.from_tally(metrics.tally(probs[::2], labels[::2], logits=logits[::2])
                                     + metrics.tally(probs[1::2], labels[1::2], logits=logits[1::2]))  # two ranks
        assert figures["nll"] == pytest.approx(expected.mean(), rel=1e-12)
        # the other figures are those of the probabilities, whatever the logits
        assert {k: figures[k] for k in ("accuracy", "ece", "brier")} == pytest.approx(
            {k: metrics.METRICS[k].function(probs, labels) for k in ("accuracy", "ece", "brier")}, rel=1e-12)


def test_directions() -> None:
    higher = {figure: metrics.metric_of(figure).higher_is_better
              for figure in ("test_acc", "best_val_acc", "final_test_acc", "accuracy", "max:val_acc", "val_acc@3",
                             "test_ece", "val_nll", "final_test_brier", "val_loss", "last:val_ece")}
    assert [f for f, h in higher.items() if h] == ["test_acc", "best_val_acc", "final_test_acc", "accuracy",
                                                    "max:val_acc", "val_acc@3"]
    assert metrics.metric_of("test_ece").function is metrics.ece
    with pytest.raises(UserError, match="'wall_time_s' names no known metric"):
        metrics.metric_of("wall_time_s")


def test_fitted_temperature_undoes_a_scaling_of_calibrated_logits() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.0, size=(20000, 10))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in true])  # drawn from softmax(logits): calibrated at T = 1
    temperature = fit_temperature(3.0 * logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.05)

    def nll(t: float) -> float:
        return metrics.nll(scaled_probs(3.0 * logits, t), labels)

    assert nll(temperature) < min(nll(1.0), nll(temperature * 1.02), nll(temperature / 1.02))
    probs = scaled_probs(3.0 * logits, temperature)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1, atol=1e-6)


def test_a_temperature_at_the_end_of_its_range_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(4)
    logits, labels = rng.normal(0, 3.0, size=(2000, 10)), rng.integers(0, 10, 2000)  # unrelated: uniform is best
    with caplog.at_level("WARNING", logger="regbench"):
        assert fit_temperature(logits, labels) == pytest.approx(100, rel=1e-3)
    assert "at the end of its range [0.01, 100]" in caplog.text


def test_every_record_names_its_figures_as_they_are_stored() -> None:
    values = {name: i for i, name in enumerate(metrics.METRICS)}
    assert metrics.named("val", "evaluation", values) == dict(val_loss=0, val_acc=1, val_ece=2, val_nll=3, val_brier=4)
    assert metrics.named("train_eval", "train_eval", values) == dict(train_eval_loss=0, train_eval_acc=1)
    assert metrics.named(metrics.prefix(metrics.FINAL, "test"), "test", None) == dict(
        final_test_acc=None, final_test_ece=None, final_test_nll=None, final_test_brier=None)
    assert list(metrics.named(metrics.prefix("", "ts", "val"), "temperature", values)) == [
        "ts_val_ece", "ts_val_nll", "ts_val_brier"]
    assert sorted(metrics.named(metrics.prefix(metrics.FINAL, "extra", "corruption"), "corruption", values)) == [
        "final_extra_corruption_acc", "final_extra_corruption_ece", "final_extra_corruption_error",
        "final_extra_corruption_nll"]
    assert [metrics.figure_name(start, m) for start in ("", "all") for m in metrics.recorded("baseline")] == [
        "mce", "relative_mce", "all_mce", "all_relative_mce"]
    assert list(metrics.named("ood", "ood", values)) == ["ood_auroc", "ood_aupr_in", "ood_aupr_out", "ood_fpr95"]
    with pytest.raises(ValueError, match="unknown record 'tset'"):
        metrics.recorded("tset")


def docs_example() -> str:
    """The code under "## Adding a metric" in docs/eval_export.md: its first indented block."""
    after = (REPO / "docs" / "eval_export.md").read_text().split("\n## Adding a metric\n", 1)[1]
    block: list[str] = []
    for line in after.splitlines():
        if line.startswith("    ") or (block and not line.strip()):
            block.append(line[4:])
        elif block:
            break
    return "\n".join(block).strip() + "\n"


def top2_by_loop(probs: np.ndarray, labels: np.ndarray) -> float:
    """The top-2 accuracy by sorting each row's classes by probability."""
    hits = 0
    for row, label in zip(probs.tolist(), labels.tolist()):
        hits += label in sorted(range(len(row)), key=lambda c: -row[c])[:2]
    return hits / len(labels)


def with_docs_metric(code: str, *args: str, cwd: Path | None = None) -> str:
    """The stdout of `code` run in a fresh Python after the docs' example added its metric."""
    proc = subprocess.run([sys.executable, "-c", docs_example() + code, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_docs_example_adds_a_metric_to_every_scoring() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=301).astype(np.float32)
    labels = rng.integers(0, 5, 301)
    out = with_docs_metric("""
import json, sys
from regbench import metrics
probs, labels = np.array(json.loads(sys.argv[1]), np.float32), np.array(json.loads(sys.argv[2]))
pooled = metrics.tally(probs[::2], labels[::2]) + metrics.tally(probs[1::2], labels[1::2])  # two ranks
figures = metrics.from_tally(pooled)
print(json.dumps([figures, metrics.named("val", "evaluation", dict(figures, loss=0.0)),
                  metrics.metric_of("final_test_top2_acc").higher_is_better]))
""", json.dumps(probs.tolist()), json.dumps(labels.tolist()))
    figures, val, higher = json.loads(out)
    assert figures["top2_acc"] == pytest.approx(top2_by_loop(probs, labels), rel=1e-12)
    assert figures["accuracy"] == pytest.approx(metrics.accuracy(probs, labels), rel=1e-12)  # the others unmoved
    assert list(val) == ["val_loss", "val_acc", "val_ece", "val_nll", "val_brier", "val_top2_acc"] and higher


@pytest.mark.slow
def test_the_docs_metric_reaches_the_run_folder_and_eval(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli = "\nimport sys\nfrom regbench.cli import main\nmain(sys.argv[1:])\n"
    with_docs_metric(cli, "train", "trainer.max_steps=4", "trainer.eval_every_steps=2", f"hydra.run.dir={run}",
                     cwd=tmp_path)
    line = json.loads(with_docs_metric(cli, "eval", str(run), "--save-probs", str(tmp_path / "p.npz"),
                                       cwd=tmp_path).splitlines()[-1])
    saved = np.load(tmp_path / "p.npz")
    expected = top2_by_loop(saved["probs"], saved["labels"])
    assert line["top2_acc"] == pytest.approx(expected, rel=1e-12)
    assert read_json(run / "summary.json")["test_top2_acc"] == pytest.approx(expected, rel=1e-12)
    assert read_json(run / "eval.json")["figures"]["test_top2_acc"] == pytest.approx(expected, rel=1e-12)
    assert [set(row) >= {"val_acc", "val_top2_acc"} for row in read_jsonl(run / "metrics.jsonl")] == [True, True]
