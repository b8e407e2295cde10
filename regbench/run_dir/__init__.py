"""The run folder: its file names, atomic JSON files, the metrics log and the learning curves."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from regbench.files import atomic_write

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
EVALUATED = "eval.json"  # the figures `regbench eval` stores for tables, each family with how it was computed
EVALUATED_LOCK = ".eval.lock"  # held by `regbench eval` while it changes eval.json and eval_args.json
HYDRA_DIR = ".hydra"  # what Hydra saves of a run (hydra.output_subdir): the three files below
CONFIG = "config.yaml"  # the run's composed config, unresolved, without its hydra node
HYDRA_CONFIG = "hydra.yaml"  # the hydra node: hydra.runtime.choices holds the group choices
OVERRIDES = "overrides.yaml"  # the command line's overrides


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path) as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the metrics log atomically (used once per evaluation; the log is small)."""
    with atomic_write(path) as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def plot_curves(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Loss and accuracy vs epoch, train and val."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(epochs, [r[f"{split}_{metric}"] for r in rows], style, marker=".", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
