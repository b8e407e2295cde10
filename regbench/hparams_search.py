"""Hyperparameter search with Optuna (hydra-optuna-sweeper): what a job returns, and the study's best trial."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from regbench.errors import UserError
from regbench.run_dir import OPTIMIZATION_RESULTS
METRIC = "hparams_search.optimized_metric"  # the config key naming what a search optimizes
METRICS = ("best_val_acc", "final_val_acc", "final_train_acc")  # summary.json values a search may optimize: never test


class NoObjective:
    """A run that did not complete: not a number, so a search records the trial as failed rather than as 0."""

    def __init__(self, status: str, error: str | None) -> None:
        self.status, self.error = status, error

    def __float__(self) -> float:
        raise TypeError(str(self))

    def __str__(self) -> str:
        return f"run {self.status}: {self.error}"


def objective(summary: dict[str, Any], metric: str) -> float | NoObjective:
    """The summary's `metric` of a completed run; a NoObjective for any other outcome."""
    if summary.get("status") == "completed" and summary.get(metric) is not None:
        return float(summary[metric])
    return NoObjective(str(summary.get("status")), summary.get("error"))


def require_sweeper(argv: list[str]) -> None:
    """A UserError naming the package when the command line asks for the Optuna sweeper and it is not installed."""
    if not any(a.startswith(("hparams_search=", "hydra/sweeper=optuna")) for a in argv):
        return
    try:
        importlib.import_module("hydra_plugins.hydra_optuna_sweeper")
    except ImportError:
        raise UserError("Optuna searches need hydra-optuna-sweeper: pip install 'regbench[tune]'") from None


def require_held_out(cfg: DictConfig) -> None:
    """A UserError when a search's trials would select on the test split (val is the test set), before the first."""
    from regbench.data import val_is_test

    if val_is_test(cfg.dataset):
        raise UserError(f"a search must not tune on the test split, but dataset.val_size=0 makes the test set of "
                        f"dataset={cfg.hydra.runtime.choices.dataset} its val split: hold out part of train as val, "
                        f"e.g. dataset.val_size=5000 (images) or dataset.val_size=0.1 (a fraction)")


def best_trial(sweep_dir: Path, runs: list[Any]) -> str | None:
    """The study's best trial as one line (value, parameters, run folder), when the sweep was an Optuna search."""
    try:
        results = yaml.safe_load((sweep_dir / OPTIMIZATION_RESULTS).read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(results, dict) or "best_value" not in results:
        return None
    value = results["best_value"]
    params = " ".join(f"{k}={v}" for k, v in (results.get("best_params") or {}).items())
    metric = next((OmegaConf.select(r.config, METRIC) for r in runs if r.config is not None), None)
    folders = [str(r.path) for r in runs if r.status == "completed" and r.summary.get(metric) == value]
    where = f" ({folders[0]})" if folders else ""
    return f"best trial: {metric} {value} with {params}{where}"
