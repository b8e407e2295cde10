"""Multiple comparisons: the p-values of every comparison of a report adjusted together, by Holm's step-down procedure
(the family-wise error rate; Demšar 2006) or Benjamini–Hochberg's (the false discovery rate), or left as they are."""
from __future__ import annotations

from typing import Sequence

from regbench.errors import UserError

HOLM, BH, UNADJUSTED = "holm", "bh", "none"
CORRECTIONS = {HOLM: "Holm's step-down procedure", BH: "Benjamini–Hochberg's procedure",
               UNADJUSTED: "no adjustment"}
HEADERS = {HOLM: "p (Holm)", BH: "p (BH)"}  # the adjusted p's column; none has no column


def check_correction(method: str) -> str:
    """`method` when it is one of CORRECTIONS; else a UserError naming them."""
    if method not in CORRECTIONS:
        raise UserError(f"--correction {method}: must be one of {', '.join(CORRECTIONS)}")
    return method


def adjust(p: Sequence[float], method: str) -> list[float]:
    """`p` adjusted over the family of all of them, in their order. Holm: the i-th smallest (from 0) times (m − i),
    made non-decreasing in that order; BH: the i-th smallest times m / (i + 1), made non-increasing from the largest;
    both capped at 1."""
    check_correction(method)
    m = len(p)
    if method == UNADJUSTED or m == 0:
        return list(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    if method == HOLM:
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p[i]))
            adjusted[i] = running
    else:
        running = 1.0
        for rank in reversed(range(m)):
            i = order[rank]
            running = min(running, m * p[i] / (rank + 1))
            adjusted[i] = running
    return adjusted
