"""Metrics of every sample's float64 log-probabilities [N, C] (log_softmax of the logits, or the log of averaged
softmaxes) that need the whole split at once, so no scoring pass can add them over batches: adaptive ECE (Nixon et
al. 2019), the area under the risk-coverage curve (AURC, Geifman & El-Yaniv 2017) and the selective risk at a
coverage. The confidence is the maximum log-probability, whose order float32 softmax loses once the top logit leads
by about 17 (both probabilities round to 1)."""
from __future__ import annotations

import numpy as np

from regbench.metrics.classification import ECE_BINS

COVERAGE = 0.8  # selective risk's coverage: the 80% most confident samples predicted, the rest abstained on


def confidences(log_probs: np.ndarray) -> np.ndarray:
    """The maximum log-probability per sample (float64): the log of the top-1 confidence."""
    return log_probs.astype(np.float64).max(axis=1)


def errors(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1.0 where the top-1 class (the first of tied ones) is not the label, else 0.0."""
    return (log_probs.argmax(axis=1) != labels).astype(np.float64)


def adaptive_ece(log_probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Adaptive ECE: the top-1 confidence's gap to accuracy over `bins` equal-mass bins of the samples sorted by
    confidence (bin b holds ranks ⌊bN/B⌋ to ⌊(b+1)N/B⌋ − 1, ties in sample order), weighted by the bins'
    counts."""
    order = np.argsort(confidences(log_probs), kind="stable")
    confidence = np.exp(confidences(log_probs))[order]
    hit = 1.0 - errors(log_probs, labels)[order]
    edges = np.arange(bins + 1) * len(order) // bins
    gaps = [abs(hit[lo:hi].sum() - confidence[lo:hi].sum()) for lo, hi in zip(edges[:-1], edges[1:])]
    return float(np.sum(gaps) / len(order))


def risks(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The risk-coverage curve: [N] the error rate among the k most confident samples, k = 1..N; within samples of
    equal confidence the expected error over their orders (errors spread evenly), so that the input order is moot."""
    confidence, error = confidences(log_probs), errors(log_probs, labels)
    order = np.argsort(-confidence, kind="stable")
    confidence, error = confidence[order], error[order]
    starts = np.flatnonzero(np.r_[True, confidence[1:] != confidence[:-1]])  # each group of equal confidence
    sizes = np.diff(np.r_[starts, len(error)])
    group_mean = np.add.reduceat(error, starts) / sizes
    spread = np.repeat(group_mean, sizes)  # every tied sample counts its group's mean error
    return np.cumsum(spread) / np.arange(1, len(error) + 1)


def aurc(log_probs: np.ndarray, labels: np.ndarray) -> float:
    """Area under the risk-coverage curve: the mean of the risks at coverages 1/N, 2/N, ..., 1."""
    return float(risks(log_probs, labels).mean())


def selective_risk(log_probs: np.ndarray, labels: np.ndarray, coverage: float = COVERAGE) -> float:
    """The error rate among the ⌈coverage·N⌉ most confident samples."""
    kept = int(np.ceil(round(coverage * len(labels), 9)))  # rounded first: 0.8 · 35 is 28.000000000000004
    return float(risks(log_probs, labels)[kept - 1])
