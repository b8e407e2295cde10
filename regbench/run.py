"""`regbench train`: the Hydra task that builds one run from its config (regbench/train/build.py), trains it and
records the outcome (regbench/train/outcome.py)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import paddle
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from regbench import identity, metrics, run_dir
from regbench.reg import combination
from regbench.models.summary import count_params
from regbench.scoring import Scores
from regbench.track import Trackers, open_trackers
from regbench.hparams_search import NoObjective, objective
from regbench.train.build import build_trainer
from regbench.train.loop import Progress
from regbench.train.outcome import recorded
from regbench.train.signals import stop_on_signals

log = logging.getLogger("regbench")


def _test_figures(start: str, scores: Scores | None) -> dict[str, float | None]:
    """summary.json's figures of a test scoring (all None without one): test_* of the best checkpoint, final_test_*
    of the last weights."""
    return metrics.named(start, "test", None if scores is None else scores.figures)


class _Curves:
    """curves.png, redrawn after an evaluation unless the last drawing is too recent, and drawn in full when training
    ends, however it ends. Drawing takes about 0.3 s on a CPU: a run that evaluates every few steps (article 4 every
    15) would otherwise spend more time drawing than training."""

    SHARE = 0.05  # at most this share of the wall time goes to redrawing
    FIRST_COST_S = 0.5  # what the first drawing is taken to cost (matplotlib's import included): a run shorter than
    # 10 s draws its curves once, when it ends

    def __init__(self, path: Path, title: str) -> None:
        self.path, self.title = path, title
        self.pending: list[dict[str, Any]] | None = None
        self.drawn_at, self.cost = time.perf_counter(), self.FIRST_COST_S

    def update(self, history: list[dict[str, Any]]) -> None:
        self.pending = history
        if time.perf_counter() - self.drawn_at >= self.cost / self.SHARE:
            self.close()

    def close(self) -> None:
        """Draw what is pending."""
        if self.pending:
            start = time.perf_counter()
            run_dir.plot_curves(self.path, self.pending, self.title)
            self.drawn_at = time.perf_counter()
            self.cost, self.pending = self.drawn_at - start, None


def _run(cfg: DictConfig, folder: Path, summary: dict[str, Any], trackers: Trackers) -> None:
    title = f"{summary['model']} · {summary['act']} · {summary['reg']} · {summary['dataset']} · seed {cfg.seed}"

    curves = _Curves(folder / run_dir.CURVES, title)

    def on_eval(p: Progress) -> None:  # rank 0 only
        run_dir.write_metrics(folder / run_dir.METRICS, p.history)
        last = p.history[-1]
        summary.update(steps=p.step, epochs_completed=p.step // trainer.steps_per_epoch,
                       best_val_acc=p.best_val_acc, best_epoch=p.best_epoch, final_val_acc=last["val_acc"],
                       final_train_acc=last["train_acc"])
        run_dir.write_json(folder / run_dir.SUMMARY, summary)
        curves.update(p.history)
        trackers.log(p.history)

    trainer, compute = build_trainer(cfg, folder, on_eval)
    summary["total_params"], summary["trainable_params"] = count_params(trainer.model)
    summary["selected_on"] = "test" if trainer.test_loader is None else "val"  # test: val is the test set
    log.info("%s on %s: %d parameters, %d steps of batch %d (%d per epoch)", summary["model"], compute.device,
             summary["total_params"], trainer.total_steps, cfg.trainer.batch_size, trainer.steps_per_epoch)
    if cfg.trainer.resume and trainer.resume():
        log.info("resumed from %s at step %d", trainer.last_path, trainer.progress.step)
        if trainer.progress.history and trainer.rank == 0:
            on_eval(trainer.progress)
    try:
        with stop_on_signals(trainer):
            trainer.fit()
    finally:
        curves.close()
    summary.update(_test_figures("final_test", trainer.test_last()))
    summary.update(_test_figures("test", trainer.test_best()))
    if summary["test_acc"] is not None:
        log.info("best checkpoint (epoch %s, val acc %.4f): test acc %.4f", summary["best_epoch"],
                 summary["best_val_acc"], summary["test_acc"])


def _first_summary(cfg: DictConfig, config_hash: str) -> dict[str, Any]:
    """summary.json before the first step: the run's choices, status running, no figures yet."""
    choices = HydraConfig.get().runtime.choices
    return dict(
        status="running", model=choices.model, act=choices.act, reg=combination.label(cfg.reg), dataset=choices.dataset,
        optim=choices.optim, sched=choices.sched, experiment=choices.get("experiment"), seed=cfg.seed,
        epochs_completed=0, steps=0, best_val_acc=None, best_epoch=None, final_val_acc=None, final_train_acc=None,
        **_test_figures("test", None), **_test_figures("final_test", None), selected_on=None, total_params=None,
        trainable_params=None, wall_time_s=0.0, error=None, config_hash=config_hash,
        world_size=paddle.distributed.get_world_size())


def train(cfg: DictConfig) -> float | NoObjective:
    """Hydra task: train one configuration in the job's run folder; record the outcome in summary.json. Returns the
    objective a sweeper may search on (hparams_search.optimized_metric; NoObjective when the run did not complete)."""
    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.runtime.output_dir)
    metric = cfg.hparams_search.optimized_metric
    config_hash = identity.config_hash(cfg)
    previous = run_dir.read_json(folder / run_dir.SUMMARY) if cfg.trainer.resume else None
    if previous and previous.get("status") == "completed" and previous.get("config_hash") == config_hash:
        log.info("%s: already completed with this config, nothing to resume", folder)
        return objective(previous, metric)
    summary = _first_summary(cfg, config_hash)
    with recorded(folder, summary, earlier_s=(previous or {}).get("wall_time_s", 0.0),
                  open_trackers=lambda: open_trackers(cfg, folder, config_hash),
                  exit_on_failure=hydra_cfg.mode != RunMode.MULTIRUN) as trackers:
        _run(cfg, folder, summary, trackers)
    return objective(summary, metric)
