"""The report's corruption figure: rows × corruptions, each cell the row's error (mean over severities and seeds)
relative to the baseline row's, from the runs' corruptions.json."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from regbench.inference.robustness import errors_of
from regbench.report.sections import Row
from regbench.run_dir import CORRUPTIONS, pyplot, read_json, save_figure


def row_errors(row: Row) -> dict[str, float]:
    """corruption -> the mean error over severities and over the row's completed runs that scored corruptions."""
    found: dict[str, list[float]] = {}
    for run in row.runs:
        result = read_json(run.path / CORRUPTIONS) if run.status == "completed" else None
        for name, errors in (errors_of(result) if result else {}).items():
            found.setdefault(name, []).append(float(np.mean(errors)))
    return {name: float(np.mean(values)) for name, values in found.items()}


def write_corruption_figure(rows: Sequence[tuple[str, Row]], path: Path) -> Path | None:
    """The heatmap at `path` when the baseline row and another scored corruptions; None otherwise."""
    errors = [(name, row_errors(row), row.is_baseline) for name, row in rows]
    base = next((e for _, e, is_base in errors if is_base and e), None)
    shown = [(name, e) for name, e, _ in errors if e]
    if base is None or len(shown) < 2:
        return None
    corruptions = [c for c in base if all(c in e for _, e in shown)]
    ratio = np.array([[e[c] / base[c] if base[c] else np.nan for c in corruptions] for _, e in shown])
    fig, ax = pyplot().subplots(figsize=(2 + 0.6 * len(corruptions), 1.5 + 0.45 * len(shown)))
    spread = max(float(np.nanmax(np.abs(ratio - 1))), 0.01)
    image = ax.imshow(ratio, cmap="RdBu_r", vmin=1 - spread, vmax=1 + spread)
    for i in range(len(shown)):
        for j in range(len(corruptions)):
            ax.text(j, i, f"{ratio[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(ratio[i, j] - 1) > 0.6 * spread else "black")
    ax.set_xticks(range(len(corruptions)), corruptions, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(shown)), [name for name, _ in shown], fontsize=8)
    ax.set_title("error under each corruption (mean of severities 1-5 and seeds) / the baseline row's", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    return save_figure(fig, path)
