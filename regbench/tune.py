"""Hyperparameter search with Optuna (hydra-optuna-sweeper): what a job returns, and the study's best trial."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from regbench.errors import UserError

RESULTS = "optimization_results.yaml"  # the Optuna sweeper writes it into the sweep folder


class NoObjective:
    """A run that did not complete: not a number, so a search records the trial as failed rather than as 0."""

    def __init__(self, status: str, error: str | None) -> None:
        self.status, self.error = status, error

    def __float__(self) -> float:
        raise TypeError(str(self))

    def __str__(self) -> str:
        return f"run {self.status}: {self.error}"


def objective(summary: dict[str, Any]) -> float | NoObjective:
    """The best val accuracy of a completed run; a NoObjective for any other outcome."""
    if summary.get("status") == "completed" and summary.get("best_val_acc") is not None:
        return float(summary["best_val_acc"])
    return NoObjective(str(summary.get("status")), summary.get("error"))


def require_sweeper(argv: list[str]) -> None:
    """A UserError naming the package when the command line asks for the Optuna sweeper and it is not installed."""
    if not any(a.startswith(("hparams_search=", "hydra/sweeper=optuna")) for a in argv):
        return
    try:
        importlib.import_module("hydra_plugins.hydra_optuna_sweeper")
    except ImportError:
        raise UserError("Optuna searches need hydra-optuna-sweeper: pip install 'regbench[tune]'") from None


def best_trial(sweep_dir: Path, runs: list[Any]) -> str | None:
    """The study's best trial as one line (value, parameters, run folder), when the sweep was an Optuna search."""
    try:
        results = yaml.safe_load((sweep_dir / RESULTS).read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(results, dict) or "best_value" not in results:
        return None
    value = results["best_value"]
    params = " ".join(f"{k}={v}" for k, v in (results.get("best_params") or {}).items())
    folders = [str(r.path) for r in runs if r.status == "completed" and r.summary.get("best_val_acc") == value]
    where = f" ({folders[0]})" if folders else ""
    return f"best trial: best_val_acc {value} with {params}{where}"
