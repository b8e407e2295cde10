"""Summaries of errors under corruption, each a mapping corruption -> error (1 - accuracy) at severities 1-5: the
mean corruption error (AugMix's CIFAR figure), Hendrycks & Dietterich's corruption errors and relative corruption
errors against a baseline run, the sets of corruptions each mean covers, and the corruption x severity heatmap."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from regbench.data.corruptions import COMMON, EXTRA, SEVERITIES
from regbench.errors import UserError

Errors = Mapping[str, Sequence[float]]  # corruption -> error at severities 1..5
SETS = ("common", "extra", "all")  # `regbench eval --corruptions-set`


def corruption_sets(names: Sequence[str]) -> dict[str, list[str]]:
    """The corruptions of a folder that each set covers: `common`, those of Hendrycks & Dietterich's 15 (when it has
    any), `extra`, those of the official folders' 4 extra ones (when it has any), and `all`, every one."""
    sets = {"common": [n for n in names if n in COMMON], "extra": [n for n in names if n in EXTRA],
            "all": list(names)}
    return {name: members for name, members in sets.items() if members}


def default_set(sets: Mapping[str, Sequence[str]]) -> str:
    """The set the mean corruption error covers unless told: H&D's 15 when the folder has them, else every file (a
    folder of one's own corruptions)."""
    return "common" if "common" in sets else "all"


def chosen_set(folder: Path | str, names: Sequence[str], chosen: str | None) -> str:
    """`chosen` (by default `default_set`), checked: a UserError when the folder has none of its corruptions."""
    sets = corruption_sets(names)
    if chosen is not None and chosen not in sets:
        raise UserError(f"--corruptions-set {chosen}: {folder} holds none of those corruptions; it has "
                        f"{', '.join(names)} (choose among {', '.join(s for s in SETS if s in sets)})")
    return chosen or default_set(sets)


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


def _paired(errors: Errors, baseline: Errors) -> tuple[np.ndarray, np.ndarray]:
    """The two tables, the baseline's in the order of `errors`; a UserError naming what the baseline lacks."""
    missing = [name for name in errors if name not in baseline]
    if missing:
        raise UserError(f"the baseline run has no scores under {', '.join(missing)}: score it on the same "
                        f"corruption files")
    return _table(errors), _table({n: baseline[n] for n in errors})


def corruption_errors(errors: Errors, baseline: Errors) -> dict[str, float]:
    """Hendrycks & Dietterich's CE per corruption: the error summed over severities over the baseline's sum."""
    ours, theirs = (table.sum(axis=1) for table in _paired(errors, baseline))
    zero = [name for name, total in zip(errors, theirs) if total == 0]
    if zero:
        raise UserError(f"the baseline run makes no error under {', '.join(zero)}: its corruption errors are "
                        f"undefined; choose another baseline")
    return {name: float(o / t) for name, o, t in zip(errors, ours, theirs)}


def relative_corruption_errors(errors: Errors, clean: float, baseline: Errors,
                               baseline_clean: float) -> dict[str, float | None]:
    """Hendrycks & Dietterich's relative CE per corruption: Σ_s (E_s − E_clean) over the baseline's Σ_s (E_s −
    E_clean), the degradation from the clean error relative to the baseline's; None where the baseline does not
    degrade (its sum is 0 or below: the ratio would have no meaning)."""
    ours, theirs = _paired(errors, baseline)
    # differences per cell before summing: a corruption that leaves the errors as they were sums to exactly 0
    ours, theirs = (ours - clean).sum(axis=1), (theirs - baseline_clean).sum(axis=1)
    return {name: float(o / t) if t > 0 else None for name, o, t in zip(errors, ours, theirs)}


def mean_ce(ces: Mapping[str, float | None]) -> float | None:
    """mCE (or relative mCE): the mean of the corruption errors over corruptions; None when one is undefined."""
    if not ces:
        raise ValueError("no corruption errors to average")
    values = list(ces.values())
    return None if any(v is None for v in values) else float(np.mean(values))


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
