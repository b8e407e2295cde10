"""Out-of-distribution detection by maximum softmax probability (Hendrycks & Gimpel 2017): in-distribution samples
are the positives (OOD ones for AUPR-Out, score negated); scikit-learn computes the curves.

The score is the log of the maximum softmax probability, the maximum float64 log-softmax of the logits: the same
order, without the ties of float32 probabilities, which are exactly 1 once the top logit leads by about 17 (float64
keeps leads apart up to ~745)."""
from __future__ import annotations

import numpy as np

from regbench.metrics.classification import log_softmax

TPR = 0.95  # FPR at 95% TPR: the usual operating point


def _scored(in_logits: np.ndarray, out_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(every sample's score that it is in-distribution, 1 for in-distribution samples and 0 for OOD ones)."""
    scores = np.concatenate([log_softmax(in_logits).max(axis=1), log_softmax(out_logits).max(axis=1)])
    return scores, np.concatenate([np.ones(len(in_logits), int), np.zeros(len(out_logits), int)])


def auroc(in_logits: np.ndarray, out_logits: np.ndarray) -> float:
    """Area under the ROC curve."""
    from sklearn.metrics import roc_auc_score

    scores, is_in = _scored(in_logits, out_logits)
    return float(roc_auc_score(is_in, scores))


def aupr_in(in_logits: np.ndarray, out_logits: np.ndarray) -> float:
    """Area under the precision-recall curve, in-distribution samples the positives."""
    from sklearn.metrics import average_precision_score

    scores, is_in = _scored(in_logits, out_logits)
    return float(average_precision_score(is_in, scores))


def aupr_out(in_logits: np.ndarray, out_logits: np.ndarray) -> float:
    """Area under the precision-recall curve, OOD samples the positives."""
    from sklearn.metrics import average_precision_score

    scores, is_in = _scored(in_logits, out_logits)
    return float(average_precision_score(1 - is_in, -scores))


def fpr95(in_logits: np.ndarray, out_logits: np.ndarray) -> float:
    """The fraction of OOD samples taken as in-distribution at the threshold that keeps 95% of in-distribution ones."""
    from sklearn.metrics import roc_curve

    scores, is_in = _scored(in_logits, out_logits)
    fpr, tpr, _ = roc_curve(is_in, scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr, TPR, side="left")])
