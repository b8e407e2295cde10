"""Classification metrics of predicted probabilities [N, C] against labels [N]: accuracy, ECE, NLL and the Brier
score, each a mean of per-sample terms or, for ECE, a function of per-bin sums (so that they add over batches and
data-parallel ranks), and the confusion matrix. ECE, NLL and the Brier score follow google/uncertainty-baselines (its
`robustness_metrics` library). Where the logits exist, the NLL is of their float64 log-softmax, not of the rounded
probabilities.
"""
from __future__ import annotations

import numpy as np

# ECE bins (Guo et al. 2017; uncertainty-baselines' CIFAR metrics): part of the metric's definition, so that the ECE
# of every run means the same, not a setting
ECE_BINS = 15
# -log of a true-class probability that underflowed to 0 in float32: that of float32's smallest normal number (87.3)
_TINY = float(np.finfo(np.float32).tiny)


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


def nll_terms(probs: np.ndarray, labels: np.ndarray, logits: np.ndarray | None) -> np.ndarray:
    """-log p(true class) per sample: of the logits when given (whose softmax `probs` is), else of `probs`."""
    return log_losses(probs, labels) if logits is None else logit_log_losses(logits, labels)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """counts[true class, predicted class]."""
    return np.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)
