"""A run scored on every corruption x severity of a folder in the CIFAR-10-C layout: `corruptions.json` and the
error heatmap in the run folder, the means over each set of corruptions (Hendrycks & Dietterich's 15, the official
folders' 4 extra ones, all), and against a baseline run, H&D's corruption errors and relative corruption errors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from omegaconf import DictConfig

from regbench.data.corruptions import read_corruptions
from regbench.files import write_text
from regbench.inference.corruptions import (chosen_set, corruption_errors, corruption_sets, mean_ce,
                                            mean_corruption_error, plot_heatmap, relative_corruption_errors)
from regbench.run_dir.evaluated import qualifying

if TYPE_CHECKING:
    from regbench.data.splits import Split
    from regbench.evaluation import Scores

RESULT = "corruptions.json"
HEATMAP = "corruptions_{checkpoint}.png"
FIGURES = ("accuracy", "ece", "nll")
# what a stored result must match to stand for the scores of a checkpoint on a folder, and what a mismatch means
SOURCE = {"folder": "it was scored on another folder", "checkpoint": "it was scored with its other checkpoint",
          "stamp": "its checkpoint file changed since it was scored", "files": "the corruption files changed since "
          "it was scored", "overrides": "it was scored with other overrides", "split": "its clean error is of "
          "another split"}


def score_corruptions(scored: Callable[[Split], Scores], dataset: DictConfig, folder: Path) -> dict[str, Any]:
    """n (images per cell) and, per corruption, the accuracy, ECE and NLL at severities 1-5."""
    cells: dict[str, dict[str, list[float]]] = {}
    n = 0
    for name, _, split in read_corruptions(folder, dataset.image_size, dataset.channels, dataset.num_classes):
        scores = scored(split)
        n = scores.n
        for figure in FIGURES:
            cells.setdefault(name, {f: [] for f in FIGURES})[figure].append(getattr(scores, figure))
    return dict(n=n, corruptions=cells)


def errors_of(result: dict[str, Any]) -> dict[str, list[float]]:
    """corruption -> error at severities 1-5 of a `score_corruptions` result."""
    return {name: [1 - a for a in c["accuracy"]] for name, c in result["corruptions"].items()}


def summarize(result: dict[str, Any], chosen: str | None, baseline: dict[str, Any] | None = None,
              baseline_run: Path | None = None) -> dict[str, Any]:
    """`result` (scores, with `clean`: the error on the clean split) with its means over each set of its corruptions
    under `sets` and those of the `chosen` set (by default H&D's 15, or every file of a folder without them) beside
    `set`; against `baseline` (another result), `baseline` (the CE and relative CE per corruption) and each set's mCE
    and relative mCE."""
    errors = errors_of(result)
    chosen = chosen_set(result["folder"], list(errors), chosen)
    ces = relative = None
    summary = dict(result)
    if baseline is not None:
        ces = corruption_errors(errors, errors_of(baseline))
        relative = relative_corruption_errors(errors, result["clean"]["error"], errors_of(baseline),
                                              baseline["clean"]["error"])
        summary["baseline"] = dict(run=str(baseline_run), stamp=baseline["stamp"],
                                   clean_error=baseline["clean"]["error"], corruption_errors=ces,
                                   relative_corruption_errors=relative)
    summary["sets"] = {name: _means(result, names, ces, relative)
                       for name, names in corruption_sets(list(errors)).items()}
    return {**summary, "set": chosen, **summary["sets"][chosen]}


def _means(result: dict[str, Any], names: list[str], ces: dict[str, float] | None,
           relative: dict[str, float | None] | None) -> dict[str, Any]:
    """The means over the corruptions `names` (and with a baseline, mCE and relative mCE)."""
    cells = [result["corruptions"][n] for n in names]
    means = dict(names=names, mean_corruption_error=mean_corruption_error({n: errors_of(result)[n] for n in names}),
                 mean_corruption_accuracy=float(np.mean([c["accuracy"] for c in cells])),
                 mean_corruption_ece=float(np.mean([c["ece"] for c in cells])),
                 mean_corruption_nll=float(np.mean([c["nll"] for c in cells])))
    if ces is not None and relative is not None:
        means.update(mce=mean_ce({n: ces[n] for n in names}), relative_mce=mean_ce({n: relative[n] for n in names}))
    return means


def stored(run: Path, expected: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the run's corruptions.json, "") when it was scored as `expected` says (folder, checkpoint and its stamp, the
    corruption files' fingerprint, qualifying overrides, clean split), else (None, why not)."""
    try:
        result = json.loads((run / RESULT).read_text())
    except (OSError, ValueError):
        return None, f"it has no readable {RESULT}"
    if not isinstance(result, dict) or not {"stamp", "files", "overrides", "clean"} <= set(result):
        return None, f"its {RESULT} was written by an older regbench, which did not record its checkpoint and files"
    found = dict(folder=result.get("folder"), checkpoint=result.get("checkpoint"), stamp=result["stamp"],
                 files=result["files"], overrides=qualifying(result["overrides"]), split=result["clean"].get("split"))
    for key, why in SOURCE.items():
        if found[key] != expected[key]:
            return None, why
    return result, ""


def store(run: Path, result: dict[str, Any], heading: str) -> Path:
    """corruptions.json and the error heatmap (its path returned) into the run folder."""
    write_text(run / RESULT, json.dumps(result, indent=1))
    png = run / HEATMAP.format(checkpoint=result["checkpoint"])
    plot_heatmap(png, errors_of(result), f"{heading}\nmean corruption error {result['mean_corruption_error']:.4f} "
                                         f"over {result['set']} ({len(result['names'])} corruptions; "
                                         f"n={result['n']} per cell)")
    return png
