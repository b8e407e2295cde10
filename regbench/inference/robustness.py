"""A run scored on every corruption x severity of a folder in the CIFAR-10-C layout: `corruptions.json` and the
error heatmap in the run folder, and against a baseline run, Hendrycks & Dietterich's corruption errors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from omegaconf import DictConfig

from regbench.data.corruptions import read_corruptions
from regbench.files import write_text
from regbench.inference.corruptions import corruption_errors, mean_ce, mean_corruption_error, plot_heatmap

if TYPE_CHECKING:
    from regbench.data.splits import Split
    from regbench.evaluation import Scores

RESULT = "corruptions.json"
HEATMAP = "corruptions_{checkpoint}.png"
FIGURES = ("accuracy", "ece", "nll")


def score_corruptions(scored: Callable[[Split], Scores], dataset: DictConfig, folder: Path) -> dict[str, Any]:
    """Per corruption, the accuracy, ECE and NLL at severities 1-5, and their means over every cell."""
    cells: dict[str, dict[str, list[float]]] = {}
    n = 0
    for name, _, split in read_corruptions(folder, dataset.image_size, dataset.channels, dataset.num_classes):
        scores = scored(split)
        n = scores.n
        for figure in FIGURES:
            cells.setdefault(name, {f: [] for f in FIGURES})[figure].append(getattr(scores, figure))
    return dict(n=n, corruptions=cells, mean_corruption_error=mean_corruption_error(errors_of(dict(corruptions=cells))),
                mean_corruption_accuracy=float(np.mean([c["accuracy"] for c in cells.values()])),
                mean_corruption_ece=float(np.mean([c["ece"] for c in cells.values()])),
                mean_corruption_nll=float(np.mean([c["nll"] for c in cells.values()])))


def errors_of(result: dict[str, Any]) -> dict[str, list[float]]:
    """corruption -> error at severities 1-5 of a `score_corruptions` result."""
    return {name: [1 - a for a in c["accuracy"]] for name, c in result["corruptions"].items()}


def stored(run: Path, folder: Path, checkpoint: str) -> dict[str, Any] | None:
    """The run's corruptions.json when it scored `checkpoint` on `folder`, else None."""
    try:
        result = json.loads((run / RESULT).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or (result.get("folder"), result.get("checkpoint")) != (str(folder), checkpoint):
        return None
    return result


def relative(result: dict[str, Any], baseline: dict[str, Any], baseline_run: Path) -> dict[str, Any]:
    """The corruption errors of `result` relative to the baseline's (CE per corruption) and their mean (mCE)."""
    ces = corruption_errors(errors_of(result), errors_of(baseline))
    return dict(run=str(baseline_run), corruption_errors=ces, mce=mean_ce(ces))


def store(run: Path, result: dict[str, Any], heading: str) -> Path:
    """corruptions.json and the error heatmap (its path returned) into the run folder."""
    write_text(run / RESULT, json.dumps(result, indent=1))
    png = run / HEATMAP.format(checkpoint=result["checkpoint"])
    plot_heatmap(png, errors_of(result), f"{heading}\nmean corruption error "
                                         f"{result['mean_corruption_error']:.4f} (n={result['n']} per cell)")
    return png
