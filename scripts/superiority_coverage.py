"""The coverage of P(A>B)'s 95% interval (regbench/report/superiority.py: Newcombe's Method 5 score interval,
continuity-corrected) in a simulation: normal samples of n runs per side, the true P(A>B) = Φ(δ/√2) for a shift δ.

    python scripts/superiority_coverage.py [--draws 20000] [--seed 0]

prints a Markdown table: one row per n, one column per true P(A>B), the share of draws whose interval holds it.
The interval depends on the runs only through U, so it is computed once per value of U and looked up."""
from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from regbench.report.superiority import score_interval

SIZES = (3, 5, 10)
TRUE = (0.5, 0.76, 0.92)


def coverage(n: int, true: float, draws: int, rng: np.random.Generator) -> float:
    """The share of `draws` pairs of n-run samples whose interval holds `true`."""
    shift = np.sqrt(2) * stats.norm.ppf(true)
    a, b = rng.normal(shift, 1.0, (draws, n)), rng.normal(0.0, 1.0, (draws, n))
    wins = (a[:, :, None] > b[:, None, :]).sum(axis=(1, 2))  # continuous: no ties
    intervals = np.array([score_interval(u / (n * n), n, n) for u in range(n * n + 1)])
    low, high = intervals[wins, 0], intervals[wins, 1]
    return float(np.mean((low <= true) & (true <= high)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=20_000, help="simulated pairs of samples per cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| runs per side | " + " | ".join(f"P(A>B) = {t}" for t in TRUE) + " |")
    print("|---|" + "---|" * len(TRUE))
    for n in SIZES:
        print(f"| {n} | " + " | ".join(f"{coverage(n, t, args.draws, rng):.3f}" for t in TRUE) + " |")


if __name__ == "__main__":
    main()
