"""Calibration of a run's predictions after training: the reliability diagram, and temperature scaling fitted on val
(Guo et al. 2017, "On Calibration of Modern Neural Networks")."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

log = logging.getLogger("regbench")

# the range a fitted temperature may take: far beyond what a trained classifier needs either way
TEMPERATURE_BOUNDS = (1e-2, 1e2)


def scaled_probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) as float32 [N, C]."""
    return softmax(logits.astype(np.float64) / temperature, axis=1).astype(np.float32)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 whose softmax(logits / T) has the least mean NLL of `labels`: a bounded scalar search
    over log T (the NLL is smooth and unimodal in it), in float64."""
    logits, rows = logits.astype(np.float64), np.arange(len(labels))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / math.exp(log_t), axis=1)[rows, labels].mean())

    low, high = TEMPERATURE_BOUNDS
    found = minimize_scalar(nll, bounds=(math.log(low), math.log(high)), method="bounded", options=dict(xatol=1e-6))
    temperature = math.exp(found.x)
    if not low * 1.001 < temperature < high / 1.001:
        log.warning("the fitted temperature %.4g is at the end of its range [%g, %g]: the val NLL still falls beyond "
                    "it (a model that has barely trained tends to uniform predictions)", temperature, low, high)
    return temperature


def plot_reliability(path: Path, bins: np.ndarray, title: str) -> None:
    """The reliability diagram of `bins` (metrics.calibration_bins: count, confidence sum and hit sum per bin) as a
    PNG: each bin's accuracy as a bar, its gap to the bin's mean confidence shaded, the diagonal of perfect
    calibration; below, the samples per bin, counts written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regbench.files import atomic_write

    counts, confidence_sums, hit_sums = bins
    width = 1.0 / len(counts)
    left = np.arange(len(counts)) * width
    full = counts > 0
    accuracy = hit_sums[full] / counts[full]
    confidence = confidence_sums[full] / counts[full]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 6.4), sharex=True,
                                      gridspec_kw=dict(height_ratios=[3, 1.2]))
    top.bar(left[full], accuracy, width, align="edge", color="tab:blue", alpha=0.75, edgecolor="black",
            label="accuracy")
    # from accuracy to mean confidence: above the bar when over-confident, over it when under-confident
    top.bar(left[full], confidence - accuracy, width, bottom=accuracy, align="edge", color="tab:red", alpha=0.35,
            edgecolor="darkred", hatch="//", label="gap to mean confidence")
    top.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title, fontsize=9)
    bottom.bar(left, counts, width, align="edge", color="0.6", edgecolor="black")
    for x, n in zip(left[full], counts[full]):
        bottom.text(x + width / 2, n, str(int(n)), ha="center", va="bottom", fontsize=7)
    bottom.set_ylim(0, max(counts.max(), 1) * 1.3)
    bottom.set_ylabel("samples")
    bottom.set_xlabel("confidence (top-1 probability)")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
