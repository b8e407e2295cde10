"""The `regbench bench` Hydra task: times the trainer's own training step, batch production and evaluation."""
from __future__ import annotations

import json
import logging
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Generator

import paddle
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from regbench.reg import combination
from regbench.bench import HYDRA_OVERRIDES
from regbench.errors import UserError
from regbench.train.build import build_trainer
from regbench.train.loop import Trainer

log = logging.getLogger("regbench")


class Unmeasured(str):
    """A combination that could not be measured: "overrides: error"."""


def bench(cfg: DictConfig) -> dict[str, Any] | Unmeasured:
    """Hydra task: measure one combination and print it as one JSON line; returns the line's figures (a sweep's
    table is made of them), or why it could not be measured."""
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    ours = set(HYDRA_OVERRIDES)
    overrides = [o for o in hydra_cfg.overrides.task if o not in ours]
    try:
        figures = measure(cfg, Path(hydra_cfg.runtime.output_dir))
    except UserError as err:
        log.error("%s: %s", " ".join(overrides), err)
        return Unmeasured(f"{' '.join(overrides)}: {err}")
    row = dict(model=choices.model, act=choices.act, reg=combination.label(cfg.reg), dataset=choices.dataset, **figures,
               overrides=overrides)
    print(json.dumps(row), flush=True)
    return row


def measure(cfg: DictConfig, folder: Path) -> dict[str, Any]:
    """Median training step (data included), batch production, evaluation throughput and memory of one config."""
    trainer, compute = build_trainer(cfg, folder, on_eval=lambda progress: None)
    device = compute.device
    steps, warmup = cfg.bench.steps, cfg.bench.warmup
    sync = paddle.device.cuda.synchronize if device == "gpu" else _nothing
    # Paddle 2.6 cannot reset the allocator's peak: there it is the peak since the process started
    reset_peak = getattr(paddle.device.cuda, "reset_max_memory_allocated", None) if device == "gpu" else None
    batches = _endless(trainer)
    data_s = _times(lambda: next(batches), sync, warmup, steps)

    # mid-training, so that layers following the progress (DropBlock's keep_prob ramp) do their full work
    trainer.progress.step = trainer.total_steps // 2
    trainer.model.train()

    waits: list[float] = []  # of each step: waiting for its batch (streamed: for the reader processes)

    def step() -> None:
        start = time.perf_counter()
        images, labels = next(batches)
        waits.append(time.perf_counter() - start)
        trainer.train_step(images, labels)
        trainer.progress.step += 1

    # the peak of the timed steps: the warm-up's cuDNN algorithm search and its workspaces are left out
    step_s = _times(step, sync, warmup, steps, after_warmup=reset_peak or _nothing)
    peak_mb = round(paddle.device.cuda.max_memory_allocated() / 2**20, 1) if device == "gpu" else None
    val = trainer.val_loader
    eval_s = _times(lambda: trainer.score(val), sync, min(warmup, 1), cfg.bench.eval_repeats)
    step_ms = 1000 * statistics.median(step_s)
    q1, q3 = _quartiles(step_s)
    data_ms = 1000 * statistics.median(data_s)
    return dict(
        device=device, batch_size=cfg.trainer.batch_size, amp=compute.amp, compile=cfg.trainer.compile,
        threads=compute.threads, paddle_version=paddle.__version__,
        train_img_per_s=round(cfg.trainer.batch_size / step_ms * 1000, 1),
        eval_img_per_s=round(len(val.split) / statistics.median(eval_s), 1),
        step_ms=round(step_ms, 2), step_ms_iqr=[round(1000 * q1, 2), round(1000 * q3, 2)],
        data_ms_per_batch=round(data_ms, 3), data_share_of_step=round(data_ms / step_ms, 4),
        data_wait_share=round(sum(waits[-steps:]) / sum(step_s), 4),
        peak_mem_mb=peak_mb,
        max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        steps=steps, warmup=warmup)


def _nothing() -> None:
    """Nothing: Paddle's CPU kernels run synchronously (nothing to wait for); no peak to reset."""


def _endless(trainer: Trainer) -> Generator[tuple[paddle.Tensor, paddle.Tensor], None, None]:
    """The trainer's training batches, epoch after epoch."""
    epoch = 0
    while True:
        yield from trainer.batches(epoch)
        epoch += 1


def _times(work: Callable[[], Any], sync: Callable[[], None], warmup: int, repeats: int,
           after_warmup: Callable[[], None] = _nothing) -> list[float]:
    """Seconds of each of `repeats` calls of work (waiting for the device), after `warmup` untimed calls and
    after_warmup()."""
    for _ in range(warmup):
        work()
    sync()
    after_warmup()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        sync()
        times.append(time.perf_counter() - start)
    return times


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3
