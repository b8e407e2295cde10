"""Classification metrics of predicted probabilities [N, C] against labels [N], each with the direction in which it
is better, so that tables know which way "better" points.

Every metric is a mean of per-sample terms or, for ECE, a function of per-bin sums; `tally` gives those sums, which
add over batches and over data-parallel ranks, and `from_tally` turns them into the metrics. ECE, NLL and the Brier
score follow google/uncertainty-baselines (its `robustness_metrics` library). Where the logits exist, the NLL is of
their float64 log-softmax, not of the rounded probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from regbench.errors import UserError

# ECE bins (Guo et al. 2017; uncertainty-baselines' CIFAR metrics): part of the metric's definition, so that the ECE
# of every run means the same, not a setting
ECE_BINS = 15
# -log of a true-class probability that underflowed to 0 in float32: that of float32's smallest normal number (87.3)
_TINY = float(np.finfo(np.float32).tiny)
TALLY_SIZE = 4 + 3 * ECE_BINS  # the length of a `tally`


def hits(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1.0 where the top-1 class (the first of tied ones) is the label, else 0.0."""
    return (probs.argmax(axis=1) == labels).astype(np.float64)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """float64 [N, C] log-softmax of logits [N, C]: z − log(1 + Σ_{c≠top} exp z_c) with z = logits − max, so that
    neither a far-off class nor a near-certain top class rounds away (no cap at float32's range)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    others = np.exp(z)
    others[np.arange(len(z)), z.argmax(axis=1)] = 0.0  # the top class's exp(0) = 1, added by log1p exactly
    return z - np.log1p(others.sum(axis=1, keepdims=True))


def log_losses(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-log p(true class) per sample of probabilities alone: one that underflowed to 0 counts as float32's smallest
    normal number (87.3); `logit_log_losses` has no such cap."""
    return -np.log(np.maximum(probs[np.arange(len(labels)), labels].astype(np.float64), _TINY))


def logit_log_losses(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[true class] per sample, in float64."""
    return -log_softmax(logits)[np.arange(len(labels)), labels]


def squared_errors(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Σ_c (p_c − y_c)² per sample, y the one-hot label: in [0, 2]."""
    errors = probs.astype(np.float64)
    errors[np.arange(len(labels)), labels] -= 1.0
    return (errors ** 2).sum(axis=1)


def calibration_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """[3, bins]: per bin of the top-1 confidence, the sample count, the sum of confidences and the sum of hits.

    Bins are equal-width over [0, 1], closed on the left, the last also on the right: bin ⌊bins · confidence⌋ (in
    the probabilities' precision), at most bins − 1, as tf.histogram_fixed_width_bins bins them in
    robustness_metrics' ExpectedCalibrationError."""
    confidence = probs.max(axis=1)
    if not np.isfinite(confidence).all():  # a diverged model: no bin to put it in
        return np.full((3, bins), np.nan)
    index = np.minimum(np.floor(confidence * bins), bins - 1).astype(np.int64)
    return np.stack([np.bincount(index, minlength=bins).astype(np.float64),
                     np.bincount(index, weights=confidence.astype(np.float64), minlength=bins),
                     np.bincount(index, weights=hits(probs, labels), minlength=bins)])


def ece_of_bins(bins: np.ndarray) -> float:
    """Σ_b (n_b / N) · |accuracy_b − confidence_b| over the bins of `calibration_bins` (empty bins add nothing)."""
    counts, confidence_sums, hit_sums = bins
    return float(np.abs(hit_sums - confidence_sums).sum() / counts.sum())


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose top-1 class is the label."""
    return float(hits(probs, labels).mean())


def ece(probs: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error: the top-1 confidence's gap to accuracy over 15 equal-width bins, weighted by the
    bins' sample counts."""
    return ece_of_bins(calibration_bins(probs, labels))


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (natural log; never label-smoothed)."""
    return float(log_losses(probs, labels).mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Brier score: the mean over samples of the sum over classes of squared differences to the one-hot label
    (robustness_metrics' Brier, in [0, 2]; some papers divide it by the number of classes)."""
    return float(squared_errors(probs, labels).mean())


def tally(probs: np.ndarray, labels: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
    """Every sum the metrics need, flat: [N, Σ hits, Σ −log p(true), Σ squared errors, then calibration_bins]; the
    log-likelihoods of `logits` (whose softmax `probs` is) when given."""
    log_loss = log_losses(probs, labels) if logits is None else logit_log_losses(logits, labels)
    sums = [len(labels), hits(probs, labels).sum(), log_loss.sum(), squared_errors(probs, labels).sum()]
    return np.concatenate([sums, calibration_bins(probs, labels).ravel()])


def from_tally(sums: np.ndarray) -> dict[str, float]:
    """accuracy, ece, nll and brier from a tally (or the sum of several)."""
    n, hit_sum, log_loss_sum, squared_sum = sums[:4]
    return dict(accuracy=float(hit_sum / n), ece=ece_of_bins(np.reshape(sums[4:], (3, -1))),
                nll=float(log_loss_sum / n), brier=float(squared_sum / n))


@dataclass(frozen=True)
class Metric:
    """A metric and its direction: `function(probs, labels)`, None for a figure probabilities alone do not give."""
    function: Callable[[np.ndarray, np.ndarray], float] | None
    higher_is_better: bool


METRICS: dict[str, Metric] = {
    "accuracy": Metric(accuracy, True),
    "ece": Metric(ece, False),
    "nll": Metric(nll, False),
    "brier": Metric(brier, False),
    "loss": Metric(None, False),  # the training objective: label smoothing included when the run trained with it
    # figures of `regbench eval` that probabilities of one split alone do not give (docs/robustness.md)
    "error": Metric(None, False),     # corruption_error: the mean error under corruption
    "mce": Metric(None, False),       # mce: Hendrycks & Dietterich's mCE against a baseline run (rel_mce before)
    "relative_mce": Metric(None, False),  # relative_mce: their relative mCE, the errors less the clean error
    "auroc": Metric(None, True),      # ood_auroc: in-distribution against OOD by maximum softmax probability
    "aupr_in": Metric(None, True),    # ood_aupr_in: area under precision-recall, in-distribution as positive
    "aupr_out": Metric(None, True),   # ood_aupr_out: OOD as positive
    "fpr95": Metric(None, False),     # ood_fpr95: the OOD fraction taken as in-distribution at 95% TPR
}
ALIASES = {"acc": "accuracy"}  # how stored figures spell them: test_acc, val_acc, best_val_acc


def metric_of(figure: str) -> Metric:
    """The metric a stored figure measures, by its ending: `test_ece`, `best_val_acc`, `final_test_nll`,
    `val_loss`, `accuracy`, `ood_aupr_in`; a `max:`/`last:` prefix or an `@EPOCH` suffix (report's syntax) is
    ignored."""
    stem = figure.rpartition(":")[2].partition("@")[0]
    for word in sorted({*METRICS, *ALIASES}, key=len, reverse=True):  # aupr_in before a shorter name it ends with
        if stem == word or stem.endswith(f"_{word}"):
            return METRICS[ALIASES.get(word, word)]
    raise UserError(f"{figure!r} names no known metric: it must end with one of "
                    f"{', '.join(sorted({*METRICS, *ALIASES}))} (e.g. test_acc, test_ece, val_nll, ood_auroc)")
