"""Out-of-distribution detection: in-distribution samples are the positives (OOD ones for AUPR-Out, score negated);
scikit-learn computes the curves of a score that is higher for what looks in-distribution.

The scores (OOD_SCORES) are functions of float64 log-probabilities, never of float32 probabilities: the maximum
log-softmax (the maximum softmax probability of Hendrycks & Gimpel 2017, in the same order but without the ties of
float32 probabilities, which are exactly 1 once the top logit leads by about 17; float64 keeps leads apart up to
~745) and the negated predictive entropy; with several stochastic passes also the negated mutual information between
the prediction and the model (BALD, Houlsby et al. 2011; Gal et al. 2017)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from regbench.metrics.classification import log_softmax

TPR = 0.95  # FPR at 95% TPR: the usual operating point


def max_log_prob(log_probs: np.ndarray) -> np.ndarray:
    """The maximum log-probability per sample: the log of the maximum softmax probability."""
    return log_probs.max(axis=1)


def entropies(log_probs: np.ndarray) -> np.ndarray:
    """The predictive entropy −Σ_c p_c log p_c per sample (nats), of float64 log-probabilities."""
    return -(np.exp(log_probs) * log_probs).sum(axis=1)


def negative_entropy(log_probs: np.ndarray) -> np.ndarray:
    """The predictive entropy negated: higher for a surer prediction."""
    return -entropies(log_probs)


def mean_log_probs(passes: np.ndarray) -> np.ndarray:
    """float64 [N, C]: the log of the mean over passes of the probabilities of `passes` [passes, N, C] of
    log-probabilities, by log-sum-exp (no float32 rounding)."""
    from scipy.special import logsumexp

    return logsumexp(passes.astype(np.float64), axis=0) - np.log(len(passes))


def mutual_information(passes: np.ndarray) -> np.ndarray:
    """BALD's mutual information per sample of `passes` [passes, N, C] of log-probabilities: the entropy of the mean
    prediction less the mean of the passes' entropies (≥ 0; 0 when every pass agrees)."""
    return entropies(mean_log_probs(passes)) - np.mean([entropies(p) for p in passes], axis=0)


# the OOD scores of one set of log-probabilities (mutual information needs several passes: regbench.inference.mc)
OOD_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"msp": max_log_prob, "entropy": negative_entropy}


def ood_scores(in_logits: np.ndarray, out_logits: np.ndarray,
           score: Callable[[np.ndarray], np.ndarray] = max_log_prob) -> tuple[np.ndarray, np.ndarray]:
    """(in-distribution then OOD scores of logits or log-probabilities, by `score` of their float64 log-softmax)."""
    return score(log_softmax(in_logits)), score(log_softmax(out_logits))


def _labelled(in_scores: np.ndarray, out_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(every sample's score, 1 for in-distribution samples and 0 for OOD ones)."""
    return (np.concatenate([in_scores, out_scores]),
            np.concatenate([np.ones(len(in_scores), int), np.zeros(len(out_scores), int)]))


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve."""
    from sklearn.metrics import roc_auc_score

    scores, is_in = _labelled(in_scores, out_scores)
    return float(roc_auc_score(is_in, scores))


def aupr_in(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the precision-recall curve, in-distribution samples the positives."""
    from sklearn.metrics import average_precision_score

    scores, is_in = _labelled(in_scores, out_scores)
    return float(average_precision_score(is_in, scores))


def aupr_out(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the precision-recall curve, OOD samples the positives."""
    from sklearn.metrics import average_precision_score

    scores, is_in = _labelled(in_scores, out_scores)
    return float(average_precision_score(1 - is_in, -scores))


def fpr95(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """The fraction of OOD samples taken as in-distribution at the threshold that keeps 95% of in-distribution ones."""
    from sklearn.metrics import roc_curve

    scores, is_in = _labelled(in_scores, out_scores)
    fpr, tpr, _ = roc_curve(is_in, scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr, TPR, side="left")])
