"""The critical-difference diagram (Demšar 2006): the rows' mean ranks on an axis, the Nemenyi critical difference
as a bar, and a thick line joining rows whose mean ranks are closer than it (no difference detected)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from regbench.run_dir import pyplot, save_figure


def _cliques(ranks: Sequence[float], cd: float) -> list[tuple[int, int]]:
    """(first, last) positions in ascending rank order of each maximal run of rows within `cd` of each other."""
    order = sorted(ranks)
    spans = [(i, max(j for j in range(i, len(order)) if order[j] - order[i] < cd)) for i in range(len(order))]
    return [(i, j) for i, j in spans if j > i and not any(a <= i and j <= b and (a, b) != (i, j) for a, b in spans)]


def draw_cd_diagram(path: Path, labels: Sequence[str], ranks: Sequence[float], cd: float, title: str) -> Path:
    """Write the diagram of rows `labels` at mean `ranks` (1 = best, on the left) with critical difference `cd`."""
    plt = pyplot()
    k = len(labels)
    order = sorted(range(k), key=lambda i: ranks[i])
    half = (k + 1) // 2
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.35 * half))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(half + 1.5), 2.0)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black")
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.15, color="black")
        ax.text(r, 0.3, str(r), ha="center", va="bottom", fontsize=9)
    ax.hlines(1.4, 1, 1 + cd, color="black", linewidth=2)
    ax.text(1 + cd / 2, 1.5, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    for place, i in enumerate(order):  # the better half labelled on the left, the others on the right
        left = place < half
        depth = -(place + 1 if left else k - place)
        end = 0.5 if left else k + 0.5
        ax.plot([ranks[i], ranks[i], end], [0, depth, depth], color="black", linewidth=0.8)
        ax.text(end, depth, f" {labels[i]} ({ranks[i]:.2f}) ", ha="right" if left else "left", va="center",
                fontsize=9)
    sorted_ranks = [ranks[i] for i in order]
    for level, (i, j) in enumerate(_cliques(ranks, cd)):
        y = -0.35 - 0.2 * level
        ax.hlines(y, sorted_ranks[i] - 0.03, sorted_ranks[j] + 0.03, color="black", linewidth=3)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path, bbox_inches="tight")
