"""`regbench plot`: val accuracy and train loss vs epoch for every group of runs: the mean over its runs as a line,
each run (seed) as a thin line of the same colour, so the seed spread shows."""
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


def run_curve(run: Run, key: str) -> dict[float, float]:
    """epoch -> `key` of one run, where it was recorded and finite."""
    curve = {}
    for r in run.metrics:
        value, epoch = r.get(key), r.get("epoch")
        if isinstance(value, (int, float)) and isinstance(epoch, (int, float)) and math.isfinite(value):
            curve[round(float(epoch), 4)] = float(value)
    return curve


def mean_curve(runs: Sequence[Run], key: str) -> tuple[list[float], list[float]]:
    """(epochs, mean of `key` over the runs that were evaluated at each epoch)."""
    at: dict[float, list[float]] = {}
    for run in runs:
        for epoch, value in run_curve(run, key).items():
            at.setdefault(epoch, []).append(value)
    epochs = sorted(at)
    return epochs, [sum(at[e]) / len(at[e]) for e in epochs]


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
            epochs, mean = mean_curve(group.runs, key)
            if not epochs:
                continue
            if len(group.runs) > 1:
                for run in group.runs:
                    seed = sorted(run_curve(run, key).items())
                    ax.plot([e for e, _ in seed], [v for _, v in seed], style, color=color, alpha=0.35,
                            linewidth=0.8)
            ax.plot(epochs, mean, style, color=color, linewidth=1.8, marker="." if len(epochs) < 30 else None,
                    label=group_label(group, keys) + (", mean and each run" if len(group.runs) > 1 else ""))
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
