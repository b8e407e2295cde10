"""Reliability diagrams per table row, pooled over the row's runs (its seeds): their calibration bins summed, so the
diagram and its ECE weigh every prediction of every seed alike."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from regbench import metrics
from regbench.errors import UserError
from regbench.inference.figures import plot_reliability
from regbench.report.runs import Run
from regbench.report.sections import Row
from regbench.run_dir import pooled_reliability_png


def pooled_bins(runs: Sequence[Path], probs_name: str) -> tuple[np.ndarray, int]:
    """The summed calibration bins of the runs' saved probabilities, and how many predictions they hold."""
    total, n = np.zeros((3, metrics.ECE_BINS)), 0
    for run in runs:
        path = run / probs_name
        if not path.is_file():
            raise UserError(f"{path} is missing: run `regbench eval {run} --split SPLIT --save-probs {path}` first, "
                            "or `regbench reproduce`, which saves them")
        with np.load(path, allow_pickle=False) as saved:
            total += metrics.calibration_bins(saved["probs"], saved["labels"])
            n += len(saved["labels"])
    return total, n


def write_pooled(rows: Sequence[tuple[str, Row]], out: Path, probs_name: str) -> list[tuple[str, Path, float, int]]:
    """One diagram per completed row whose runs all saved `probs_name`; (name, PNG, ECE, n) of each drawn."""
    drawn = []
    for name, row in rows:
        completed: list[Run] = [r for r in row.runs if r.status == "completed"]
        if not completed or not all((r.path / probs_name).is_file() for r in completed):
            continue
        bins, n = pooled_bins([r.path for r in completed], probs_name)
        ece, accuracy = metrics.ece_of_bins(bins), bins[2].sum() / n
        png = out / pooled_reliability_png(name)
        plot_reliability(png, bins, f"{name}: {len(completed)} runs pooled, n={n}\n"
                                    f"ECE {ece:.4f} ({metrics.ECE_BINS} bins), accuracy {accuracy:.4f}")
        drawn.append((name, png, float(ece), n))
    return drawn
