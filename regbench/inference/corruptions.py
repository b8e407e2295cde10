"""Summaries of errors under corruption, each a mapping corruption -> error (1 - accuracy) at severities 1-5: the
mean corruption error (AugMix's CIFAR figure), Hendrycks & Dietterich's corruption errors against a baseline run,
and the corruption x severity heatmap."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from regbench.data.corruptions import SEVERITIES
from regbench.errors import UserError

Errors = Mapping[str, Sequence[float]]  # corruption -> error at severities 1..5


def _table(errors: Errors) -> np.ndarray:
    """errors as a float array [corruptions, 5], checked."""
    if not errors:
        raise ValueError("no corruptions to summarize")
    table = np.asarray([errors[name] for name in errors], dtype=np.float64)
    if table.shape[1:] != (SEVERITIES,):
        raise ValueError(f"every corruption needs one error per severity 1-{SEVERITIES}, got shape {table.shape}")
    return table


def mean_corruption_error(errors: Errors) -> float:
    """The unnormalized mean of the error over every corruption and severity (AugMix's CIFAR-10-C figure)."""
    return float(_table(errors).mean())


def corruption_errors(errors: Errors, baseline: Errors) -> dict[str, float]:
    """Hendrycks & Dietterich's CE per corruption: the error summed over severities over the baseline's sum."""
    missing = [name for name in errors if name not in baseline]
    if missing:
        raise UserError(f"the baseline run has no scores under {', '.join(missing)}: score it on the same "
                        f"corruption files")
    ours, theirs = _table(errors).sum(axis=1), _table({n: baseline[n] for n in errors}).sum(axis=1)
    zero = [name for name, total in zip(errors, theirs) if total == 0]
    if zero:
        raise UserError(f"the baseline run makes no error under {', '.join(zero)}: its corruption errors are "
                        f"undefined; choose another baseline")
    return {name: float(o / t) for name, o, t in zip(errors, ours, theirs)}


def mean_ce(ces: Mapping[str, float]) -> float:
    """mCE: the mean of the corruption errors over corruptions."""
    if not ces:
        raise ValueError("no corruption errors to average")
    return float(np.mean(list(ces.values())))


def plot_heatmap(path: Path, values: Errors, title: str, label: str = "error") -> None:
    """A corruption x severity heatmap PNG of `values` (in [0, 1]), each cell written in percent, its mean in the
    last column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regbench.files import atomic_write

    table = _table(values)
    shown = np.concatenate([table, table.mean(axis=1, keepdims=True)], axis=1)
    names = list(values)
    fig, ax = plt.subplots(figsize=(5.5, 1.2 + 0.32 * len(names)))
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
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
