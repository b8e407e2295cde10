"""`regbench plot`: val accuracy and train loss vs epoch for every group of runs, mean line and min–max band."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from regbench.files import atomic_write  # noqa: E402
from regbench.report.runs import ABSENT, Group, PathLike, Run, find_runs, group_runs  # noqa: E402

PLOT_PNG = "plot.png"
PANELS = (("val_acc", "val accuracy"), ("train_loss", "train loss"))


def curve_band(runs: Sequence[Run], key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """(epochs, mean, min, max) of `key` over the runs that were evaluated at each epoch."""
    at: dict[float, list[float]] = {}
    for run in runs:
        for r in run.metrics:
            value, epoch = r.get(key), r.get("epoch")
            if isinstance(value, (int, float)) and isinstance(epoch, (int, float)) and math.isfinite(value):
                at.setdefault(round(float(epoch), 4), []).append(float(value))
    epochs = sorted(at)
    return (epochs, [sum(at[e]) / len(at[e]) for e in epochs], [min(at[e]) for e in epochs],
            [max(at[e]) for e in epochs])


def group_label(group: Group, keys: Sequence[str]) -> str:
    """The choices that tell this group apart, its status when not completed, and its number of runs."""
    name = ", ".join(f"{k}={group.values[k]}" for k in keys if group.values[k] != ABSENT) or "all runs"
    status = "" if group.status == "completed" else f", {group.status}"
    return f"{name} (n={len(group.runs)}{status})"


def plot_runs(runs: Sequence[Run], path: PathLike) -> Path:
    """Draw every group of `runs` into one PNG at `path`; groups without evaluations are left out."""
    groups, keys = group_runs(runs)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(12, 4.5))
    drawn = 0
    for i, group in enumerate(groups):
        color = f"C{i % 10}"
        style = "-" if group.status == "completed" else "--"
        for ax, (key, _) in zip(axes, PANELS):
            epochs, mean, low, high = curve_band(group.runs, key)
            if not epochs:
                continue
            ax.plot(epochs, mean, style, color=color, marker="." if len(epochs) < 30 else None,
                    label=group_label(group, keys))
            ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
            drawn += 1
    for ax, (_, title) in zip(axes, PANELS):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    if drawn:
        axes[0].legend(fontsize="small")
    else:
        fig.text(0.5, 0.5, "no evaluations recorded yet", ha="center", va="center")
    fig.tight_layout()
    out = Path(path)
    try:
        with atomic_write(out, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out


def write_plot(dirs: Sequence[PathLike]) -> Path:
    """`regbench plot DIR...`: one PNG of every run under `dirs`, written into the first DIR; returns its path."""
    return plot_runs(find_runs(dirs), Path(dirs[0]) / PLOT_PNG)
