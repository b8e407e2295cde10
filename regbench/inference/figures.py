"""The PNG figures of `regbench eval`: the confusion matrix, the reliability diagram and the corruption x severity
heatmap, each written atomically (run_dir.save_figure)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from regbench.metrics.classification import ECE_BINS
from regbench.metrics.corruption import SEVERITIES, Errors, error_table
from regbench.run_dir import pyplot, save_figure


MAX_LABELLED = 36  # classes whose names and counts fit the confusion matrix's cells


def plot_confusion(path: Path, counts: np.ndarray, classes: tuple[str, ...], title: str) -> None:
    """The confusion matrix as a PNG, rows normalized (each true class sums to 1); up to MAX_LABELLED classes the
    counts written in the cells and the classes named."""
    n = len(classes)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    # at most 20 inches a side: ImageNet's 1,000 classes at the per-class size would take a 55,000-pixel square (21 GB)
    fig, ax = pyplot().subplots(figsize=(min(1.2 + 0.55 * n, 20), min(1.0 + 0.5 * n, 20)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if n <= MAX_LABELLED:
        for i, j in zip(*np.nonzero(counts)):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_reliability(path: Path, bins: np.ndarray, title: str) -> None:
    """The reliability diagram of `bins` (metrics.calibration_bins: count, confidence sum and hit sum per bin) as a
    PNG: each bin's accuracy as a bar, its gap to the bin's mean confidence shaded, the diagonal of perfect
    calibration; below, the samples per bin, counts written."""
    counts, confidence_sums, hit_sums = bins
    width = 1.0 / len(counts)
    left = np.arange(len(counts)) * width
    full = counts > 0
    accuracy = hit_sums[full] / counts[full]
    confidence = confidence_sums[full] / counts[full]
    fig, (top, bottom) = pyplot().subplots(2, 1, figsize=(5.2, 6.4), sharex=True,
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
    save_figure(fig, path)


def plot_heatmap(path: Path, values: Errors, title: str, label: str = "error") -> None:
    """A corruption x severity heatmap PNG of `values` (in [0, 1]), each cell written in percent, its mean in the
    last column."""
    table = error_table(values)
    shown = np.concatenate([table, table.mean(axis=1, keepdims=True)], axis=1)
    names = list(values)
    fig, ax = pyplot().subplots(figsize=(5.5, 1.2 + 0.32 * len(names)))
    image = ax.imshow(shown, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    for i in range(shown.shape[0]):
        for j in range(shown.shape[1]):
            ax.text(j, i, f"{100 * shown[i, j]:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > 0.6 else "black")
    ax.axvline(SEVERITIES - 0.5, color="black", linewidth=1)
    ax.set_xticks(range(SEVERITIES + 1), [str(s) for s in range(1, SEVERITIES + 1)] + ["mean"], fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("severity")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label=f"{label} (cells: %)", fraction=0.05)
    fig.tight_layout()
    save_figure(fig, path)


def calibration_line(figures: Mapping[str, float], n: int) -> str:
    """The line of a reliability diagram's title that gives its figures."""
    return f"ECE {figures['ece']:.4f} ({ECE_BINS} bins), accuracy {figures['accuracy']:.4f} (n={n})"
