"""Reliability diagrams per table row, pooled over the row's runs (its seeds).

    python scripts/pooled_reliability.py SWEEP_DIR OUT_DIR [--probs NAME]

Each run folder must hold the per-sample probabilities `regbench eval RUN --save-probs RUN/NAME` wrote (default
probs_test_best.npz). The calibration bins of a row's runs are summed, so the diagram and its ECE weigh every test
prediction of every seed alike; OUT_DIR gets reliability_<row>.png per row of each table.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from regbench import metrics
from regbench.inference.figures import plot_reliability
from regbench.report.runs import find_runs
from regbench.report.sections import build_sections


def pooled_bins(runs: list[Path], probs_name: str) -> tuple[np.ndarray, int]:
    """The summed calibration bins of the runs' saved probabilities, and how many predictions they hold."""
    total, n = np.zeros((3, metrics.ECE_BINS)), 0
    for run in runs:
        path = run / probs_name
        if not path.is_file():
            sys.exit(f"pooled_reliability: {path} is missing: run `regbench eval {run} --split test "
                     f"--save-probs {path}` first")
        with np.load(path, allow_pickle=False) as saved:
            total += metrics.calibration_bins(saved["probs"], saved["labels"])
            n += len(saved["labels"])
    return total, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("out")
    parser.add_argument("--probs", default="probs_test_best.npz")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for section in build_sections(find_runs([Path(args.sweep)])):
        for row in section.rows:
            bins, n = pooled_bins([run.path for run in row.runs], args.probs)
            ece, accuracy = metrics.ece_of_bins(bins), bins[2].sum() / n
            name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", row.label)
            plot_reliability(out / f"reliability_{name}.png", bins,
                             f"{row.label}: {len(row.runs)} runs pooled, n={n}\n"
                             f"ECE {ece:.4f} ({metrics.ECE_BINS} bins), accuracy {accuracy:.4f}")
            print(f"{row.label}: ECE {ece:.4f}, accuracy {accuracy:.4f}, n={n} -> {out / f'reliability_{name}.png'}")


if __name__ == "__main__":
    main()
