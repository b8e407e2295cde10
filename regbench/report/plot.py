"""`regbench plot`: val accuracy and train loss vs epoch for every group of runs: the mean over its runs as a line,
the range of its runs (min–max) as a shaded band around it, so the seed spread shows."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from regbench.articles import Article, articles_by_experiment
from regbench.report.matching import row_label
from regbench.report.runs import ABSENT, Group, PathLike, Run, find_runs, group_runs
from regbench.run_dir import PLOT_PNG, pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PANELS = (("val_acc", "val accuracy"), ("train_loss", "train loss"))
LEGEND_TITLE = "line: mean over runs\nshaded: min–max over runs"


def run_curve(run: Run, key: str) -> dict[float, float]:
    """epoch -> `key` of one run, where it was recorded and finite."""
    curve = {}
    for r in run.metrics:
        value, epoch = r.get(key), r.get("epoch")
        if isinstance(value, (int, float)) and isinstance(epoch, (int, float)) and math.isfinite(value):
            curve[round(float(epoch), 4)] = float(value)
    return curve


def curves(runs: Sequence[Run], key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """(epochs, mean, min, max) of `key` over the runs that were evaluated at each epoch."""
    at: dict[float, list[float]] = {}
    for run in runs:
        for epoch, value in run_curve(run, key).items():
            at.setdefault(epoch, []).append(value)
    epochs = sorted(at)
    return (epochs, [sum(at[e]) / len(at[e]) for e in epochs], [min(at[e]) for e in epochs],
            [max(at[e]) for e in epochs])


def group_label(group: Group, keys: Sequence[str], articles: dict[str, Article]) -> str:
    """The article row the group reproduces, else the choices that tell it apart; then any other setting that does,
    its status when not completed, and its number of runs."""
    found = row_label(articles, group.runs[0])
    label, covered = found if found else ("", set())
    rest = [f"{k}={group.values[k]}" for k in keys if k not in covered and group.values[k] != ABSENT]
    name = ", ".join(([label] if label else []) + rest) or "all runs"
    status = "" if group.status == "completed" else f", {group.status}"
    return f"{name} (n={len(group.runs)}{status})"


def _whole_epochs(ax: Axes) -> None:
    """Ticks at whole epochs only, the view widened to two of them when it holds fewer (e.g. one evaluation)."""
    from matplotlib.ticker import MaxNLocator

    low, high = ax.get_xlim()
    if math.floor(high) - math.ceil(low) < 1:
        ax.set_xlim(min(low, math.floor(low)), max(high, math.floor(low) + 1))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def draw(runs: Sequence[Run], articles: dict[str, Article] | None = None) -> Figure:
    """The figure of every group of `runs` (groups without evaluations are left out), the legend beside the panels."""
    articles = articles_by_experiment() if articles is None else articles
    groups, keys = group_runs(runs)
    fig, axes = pyplot().subplots(1, len(PANELS), figsize=(12, 4.5))
    handles, labels = [], []
    for i, group in enumerate(groups):
        color = f"C{i % 10}"
        style = "-" if group.status == "completed" else "--"
        line = None
        for ax, (key, _) in zip(axes, PANELS):
            epochs, mean, low, high = curves(group.runs, key)
            if not epochs:
                continue
            if len(group.runs) > 1:
                ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
            line = ax.plot(epochs, mean, style, color=color, linewidth=1.8,
                           marker="." if len(epochs) < 30 else None)[0]
        if line is not None:
            handles.append(line)
            labels.append(group_label(group, keys, articles))
    for ax, (_, title) in zip(axes, PANELS):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        _whole_epochs(ax)
    fig.tight_layout()
    if handles:
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize="small",
                   title=LEGEND_TITLE, title_fontsize="small", alignment="left")
    else:
        fig.text(0.5, 0.5, "no evaluations recorded yet", ha="center", va="center")
    return fig


def plot_runs(runs: Sequence[Run], path: PathLike) -> Path:
    """Draw every group of `runs` into one PNG at `path`."""
    return save_figure(draw(runs), Path(path), bbox_inches="tight")  # "tight" takes the legend in


def write_plot(dirs: Sequence[PathLike]) -> Path:
    """`regbench plot DIR...`: one PNG of every run under `dirs`, written into the first DIR; returns its path."""
    return plot_runs(find_runs(dirs), Path(dirs[0]) / PLOT_PNG)
