"""Trackers: listeners that mirror a run to TensorBoard, VisualDL or MLflow (`logger=[...]`).

The trainer calls them at the moments it already has: start (`open_trackers`), each evaluation (`Trackers.log`) and
the end with the run's status (`Trackers.close`). The run folder stays the record: a tracker that fails is switched
off with one warning and training goes on.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from regbench.errors import UserError

log = logging.getLogger("regbench")

# tracker name -> (module it imports, PyPI package that provides it)
PACKAGES = {"tensorboard": ("tensorboardX", "tensorboardX"), "visualdl": ("visualdl", "visualdl"),
            "mlflow": ("mlflow", "mlflow")}


@dataclass(frozen=True)
class RunInfo:
    """What a tracker needs to know about the run it mirrors."""
    folder: Path
    config: dict[str, Any]      # the composed config, resolved, without `hydra`
    choices: dict[str, Any]     # config group choices (model, act, reg, ...)
    config_hash: str
    resume: bool                # trainer.resume: continue what an earlier attempt logged
    sweep_dir: str | None       # the sweep folder in a multirun, else None
    job_num: int | None
    name: str                   # a short name for dashboards: model-act-reg-seed (and job number)


class Tracker(Protocol):
    logged_step: int  # the last step whose metrics the tracker already holds (-1: none)

    def log(self, row: dict[str, Any]) -> None: ...

    def close(self, summary: dict[str, Any]) -> None: ...


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl row as dashboard scalars: train_loss -> train/loss, lr -> lr; `step` is the x axis."""
    out = {}
    for key, value in row.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        split, _, rest = key.partition("_")
        out[f"{split}/{rest}" if rest and split in ("train", "val", "test") else key] = float(value)
    return out


def status_text(summary: dict[str, Any]) -> str:
    """The run's final status, with its error when it has one."""
    return summary["status"] + (f": {summary['error']}" if summary.get("error") else "")


class WriterTracker:
    """A tracker over a dashboard writer that has add_scalar(tag, value, step), add_text(tag, text, step), flush()
    and close() (tensorboardX's SummaryWriter, VisualDL's LogWriter)."""

    writer: Any
    logged_step: int

    def log(self, row: dict[str, Any]) -> None:
        for tag, value in scalars(row).items():
            self.writer.add_scalar(tag, value, row["step"])
        self.writer.flush()

    def close(self, summary: dict[str, Any]) -> None:
        self.writer.add_text("status", status_text(summary), summary.get("steps") or 0)
        self.writer.close()


def require(logger_cfg: DictConfig) -> None:
    """A UserError naming the package to install for the first chosen tracker whose package is missing."""
    for name in logger_cfg or {}:
        module, package = PACKAGES.get(str(name), (None, None))
        if module is None:
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError(f"logger={name} needs the {package} package: pip install 'regbench[track]' "
                            f"(or pip install {package})") from None


class Trackers:
    """The chosen trackers behind one guard: a tracker's first error is one warning and the end of that tracker."""

    def __init__(self, trackers: dict[str, Tracker]) -> None:
        self.trackers = trackers

    def _guard(self, name: str, action: str, call: Any, *args: Any) -> Any:
        """call(*args), or None with one warning (and the tracker dropped) when it raises."""
        try:
            return call(*args)
        except Exception as err:  # a dashboard must never stop training
            self.trackers.pop(name, None)
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            log.warning("logger %s stopped (%s failed: %s: %s); training goes on and the run folder stays complete",
                        name, action, type(err).__name__, first[:300])

    def log(self, history: list[dict[str, Any]]) -> None:
        """Send every row of the metrics history that a tracker does not hold yet."""
        for name, tracker in list(self.trackers.items()):
            rows = [r for r in history if r["step"] > tracker.logged_step]
            self._guard(name, "logging metrics", self._send, tracker, rows)

    @staticmethod
    def _send(tracker: Tracker, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            tracker.log(row)
            tracker.logged_step = row["step"]

    def close(self, summary: dict[str, Any]) -> None:
        """Record the run's final status (completed, interrupted, diverged, failed) and release the trackers."""
        for name, tracker in list(self.trackers.items()):
            self._guard(name, "closing", tracker.close, summary)
        self.trackers.clear()


def run_info(cfg: DictConfig, folder: Path, config_hash: str) -> RunInfo:
    """The RunInfo of the Hydra job that is running now."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from regbench.reg import combination
    from regbench.config import run_config

    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/") and v is not None}
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    job_num = hydra_cfg.job.num if multirun else None
    name = f"{choices.get('model')}-{choices.get('act')}-{combination.label(cfg.reg)}-seed{cfg.seed}"
    return RunInfo(folder=folder, config=OmegaConf.to_container(run_config(cfg), resolve=True), choices=choices,
                   config_hash=config_hash, resume=bool(cfg.trainer.resume),
                   sweep_dir=str(hydra_cfg.sweep.dir) if multirun else None, job_num=job_num,
                   name=name if job_num is None else f"{job_num}:{name}")


def open_trackers(cfg: DictConfig, folder: Path, config_hash: str) -> Trackers:
    """Start the trackers `cfg.logger` chooses (none by default); one that cannot start is left out with a warning."""
    require(cfg.logger)
    trackers = Trackers({})
    if not cfg.logger:
        return trackers
    run = run_info(cfg, folder, config_hash)
    for name, node in cfg.logger.items():
        tracker = trackers._guard(str(name), "starting", lambda: instantiate(node)(run))
        if tracker is not None:
            trackers.trackers[str(name)] = tracker
    return trackers
