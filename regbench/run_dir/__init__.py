"""The run folder and the sweep folder: the name of every file in them, how to find a sweep's runs, and reading and
writing their files atomically (JSON, the metrics log, PNG figures). Every other module asks here: no file name of a
run folder is written anywhere else in regbench/ (tests/test_run_dir.py checks it)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, TypeVar

from regbench.errors import UserError
from regbench.atomic_files import atomic_write, write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# --- a run folder ------------------------------------------------------------------------------------------------
SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
TRAIN_LOG = "train.log"  # Hydra's job log, named after hydra.job.name (conf/config.yaml)
CHECKPOINTS_DIR = "checkpoints"
BEST, LAST = "best", "last"  # CHECKPOINTS_DIR/<name>.npz: the best val accuracy's weights, the last ones
CHECKPOINTS = (BEST, LAST)
EVALUATED = "eval.json"  # the figures `regbench eval` stores for tables, each family with how it was computed
EVALUATED_ARGUMENTS = "eval_args.json"  # the arguments of every evaluation already made
EVALUATED_LOCK = ".eval.lock"  # held by `regbench eval` while it changes eval.json and eval_args.json
CORRUPTIONS = "corruptions.json"  # `regbench eval --corruptions`: the scores of every corruption x severity
HYDRA_DIR = ".hydra"  # what Hydra saves of a run (hydra.output_subdir): the three files below
CONFIG = "config.yaml"  # the run's composed config, unresolved, without its hydra node
HYDRA_CONFIG = "hydra.yaml"  # the hydra node: hydra.runtime.choices holds the group choices
OVERRIDES = "overrides.yaml"  # the command line's overrides
EXPORT_DIR = "export"  # `regbench export`: EXPORT_DIR/<checkpoint>/ unless --output says
EXPORT_INFO = "export.json"  # beside the exported files: what the model takes and gives
MLFLOW_RUN = "mlflow.json"  # which MLflow run mirrors the run (read back on resume)
VISUALDL_LOG = "vdlrecords.regbench.log"  # in logger.visualdl.subdir: one file per run, a resumed run appends to it

# --- a sweep folder (besides its numbered runs) ------------------------------------------------------------------
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
PLOT_PNG = "plot.png"
OPTIMIZATION_RESULTS = "optimization_results.yaml"  # the Optuna sweeper's
STUDY = "study.json"  # `regbench reproduce`: the command, the article and budget, how the grid ran, each stage's time
REPORT_DIR = "report"  # `regbench report` / `regbench reproduce`: the study's README, tables and figures
REPORT_README = "README.md"
CORRUPTION_FIGURE = "corruptions.png"  # rows x corruptions, error relative to the baseline row
UNCERTAINTY_MD = "uncertainty.md"  # per row and metric: single run, MC passes and the ensemble of its seeds


def pooled_reliability_png(label: str) -> str:
    """The reliability diagram of a table row, its seeds' predictions pooled."""
    return f"reliability_{_file_part(label)}.png"


def probs_npz(split: str, checkpoint_name: str) -> str:
    """A run's saved per-sample probabilities and labels of a split (`regbench eval --save-probs`)."""
    return f"probs_{split}_{checkpoint_name}.npz"


def metric_table_md(metric: str) -> str:
    """The table of one of several metrics tabled together (`regbench table --metric A --metric B`)."""
    return f"table_{_file_part(metric)}.md"


def metric_table_csv(metric: str) -> str:
    return f"table_{_file_part(metric)}.csv"


def across_tasks_md(by: str, metric: str) -> str:
    """Rows compared across the tasks that `by` tells apart (`regbench table --by KEY`): Friedman, P(improvement)."""
    return f"across_{_file_part(by)}_{_file_part(metric)}.md"


def critical_difference_png(by: str, metric: str) -> str:
    """The critical-difference diagram of the rows' mean ranks across the tasks."""
    return f"critical_difference_{_file_part(by)}_{_file_part(metric)}.png"


def _file_part(name: str) -> str:
    """A metric, key or row label as part of a file name: each run of characters other than ASCII letters, digits and
    . - _ @ + becomes one _ (none at either end)."""
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", name).strip("_")


def checkpoint_file(name: str) -> str:
    """A checkpoint's path inside the run folder: checkpoints/best.npz."""
    return f"{CHECKPOINTS_DIR}/{name}.npz"


def checkpoint(run: Path, name: str) -> Path:
    return run / checkpoint_file(name)


def confusion_png(split: str, checkpoint_name: str) -> str:
    return f"confusion_{split}_{checkpoint_name}.png"


def reliability_png(split: str, checkpoint_name: str, temperature: bool = False) -> str:
    """The reliability diagram's name; `temperature`: after temperature scaling."""
    return f"reliability_{split}_{checkpoint_name}{'_temperature' if temperature else ''}.png"


def heatmap_png(checkpoint_name: str) -> str:
    """The corruption x severity error heatmap's name."""
    return f"corruptions_{checkpoint_name}.png"


def export_folder(run: Path, checkpoint_name: str) -> Path:
    return run / EXPORT_DIR / checkpoint_name


# --- which folders are runs ----------------------------------------------------------------------------------------
def is_run(folder: Path) -> bool:
    """A folder the trainer wrote (summary.json) or a job Hydra started (.hydra/) that may have died before it."""
    return (folder / SUMMARY).is_file() or (folder / HYDRA_DIR).is_dir()


def run_folders(root: Path) -> Iterator[Path]:
    """Every run folder in or under `root`, at any depth (single runs, sweeps, folders of sweeps): `root` itself
    when it is one, else its subfolders by name, hidden ones and links left out."""
    if is_run(root):
        yield root
        return
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
            yield from run_folders(Path(entry.path))


def sweep_runs(folder: Path) -> list[Path] | None:
    """The runs of a sweep folder that have a saved config (its numbered jobs, by number), or None when `folder` is
    one run (or no folder)."""
    if (folder / HYDRA_DIR).is_dir() or not folder.is_dir():
        return None
    runs = sorted((p for p in run_folders(folder) if p.parent == folder and p.name.isdigit()
                   and (p / HYDRA_DIR).is_dir()), key=lambda p: int(p.name))
    if not runs:
        raise UserError(f"{folder} is neither a run folder (with {HYDRA_DIR}/) nor a sweep folder (numbered run "
                        f"subfolders with {HYDRA_DIR}/): pass one of them")
    return runs


# --- reading and writing -------------------------------------------------------------------------------------------
Kind = TypeVar("Kind", dict, list)


def read_json(path: Path, kind: type[Kind] = dict) -> Kind | None:
    """The JSON file's value when it is readable and a `kind` (an object unless told), else None."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, kind) else None


def write_json(path: Path, data: Any, indent: int = 2, sort_keys: bool = False, newline: bool = True) -> None:
    """`data` as JSON at `path`, atomically (eval's files are written with indent 1 and no final newline)."""
    write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + ("\n" if newline else ""))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The metrics log's rows: complete lines only, a line cut short by a crash is skipped."""
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the metrics log atomically (used once per evaluation; the log is small)."""
    with atomic_write(path) as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, which draws into files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path, **options: Any) -> Path:
    """Write `fig` as a 100 dpi PNG at `path` atomically (savefig `options`, e.g. bbox_inches), then close it."""
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png", dpi=100, **options)
    finally:
        pyplot().close(fig)
    return path


def plot_curves(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Loss and accuracy vs epoch, train and val."""
    plt = pyplot()
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
    save_figure(fig, path)
