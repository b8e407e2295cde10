"""A run's trainer built from its config: data, model, batch regularizers, optimizer and schedule, on the device
and in the precision the config asks for. `regbench train` (regbench/run.py) and `regbench bench` build it here."""
from __future__ import annotations

import logging
import math
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import paddle
from omegaconf import DictConfig

from regbench.reg.batch import build_batch_regs
from regbench.data import load_splits
from regbench.data.batches import BatchLoader, keep_on_device
from regbench.data.splits import Split
from regbench.scoring import eval_loader
from regbench.models import build_model
from regbench.train import speed, threads
from regbench.train.compute import Compute, set_up
from regbench.train.loop import LoopConfig, Progress, Trainer, run_length
from regbench.train.optim import build_lr, build_optimizer
from regbench.train.shared_folder import require_shared_folder

log = logging.getLogger("regbench")


def build_trainer(cfg: DictConfig, folder: Path, on_eval: Callable[[Progress], None]) -> tuple[Trainer, Compute]:
    """The run's trainer (model, data, optimizer, schedule) with the trainer's speed switches applied; where and how
    it computes."""
    tr = cfg.trainer
    compute = set_up(tr)
    log.info("CPU threads: %d (trainer.threads=%s)", compute.threads, tr.threads)
    paddle.seed(cfg.seeds.init)
    model = build_model(cfg.model, cfg.act, cfg.reg)
    rank, world = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
    train, val, test, train_eval = _loaders(cfg, shard=(rank, world), device=compute.device)
    compute.adapt(model)
    if world > 1 and tr.sync_bn:
        model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if tr.compile:
        speed.compile_model(model, next(train.epoch(seed=None))[0])
    if world > 1:  # under paddle.distributed.launch: one process per device, gradients averaged
        paddle.distributed.init_parallel_env()
        require_shared_folder(folder)
        model = paddle.DataParallel(model)
        log.info("data parallel: rank %d of %d, %d training images per rank and epoch", rank, world, train.shard_size)
    steps = run_length(tr.epochs, train.num_batches, tr.max_steps)
    units = steps if cfg.sched.interval == "step" else math.ceil(steps / train.num_batches)
    lr = build_lr(cfg.sched, cfg.optim.lr, units)
    optimizer = build_optimizer(cfg.optim, lr, model.parameters())
    return Trainer(model, optimizer, lr, train, val, test, folder, loop_config(cfg, compute.amp), on_eval,
                   build_batch_regs(cfg.reg), train_eval), compute


def loop_config(cfg: DictConfig, amp: str) -> LoopConfig:
    """The loop's settings: the schedule's interval, the seeds of its streams, the AMP mode, and the trainer's keys
    of the same names as the other fields."""
    given = dict(sched_interval=cfg.sched.interval, order_seed=cfg.seeds.order, augment_seed=cfg.seeds.augment,
                 noise_seed=cfg.seeds.noise, amp=amp)
    return LoopConfig(**given, **{f.name: cfg.trainer[f.name] for f in fields(LoopConfig) if f.name not in given})


def _loaders(cfg: DictConfig, shard: tuple[int, int], device: str) -> tuple[BatchLoader, ...]:
    """train, val, test (None when val is the test set) and, with trainer.eval_train, train in eval mode (else None);
    their splits copied to the device once when trainer.data_on_device says so."""
    splits = load_splits(cfg.dataset)
    ds, tr = cfg.dataset, cfg.trainer
    workers = 0 if isinstance(splits.train, Split) else threads.workers(tr)
    if workers:
        log.info("streamed data: %d reader processes (trainer.num_workers=%s)", workers, tr.num_workers)
    train = BatchLoader(splits.train, batch_size=tr.batch_size, mean=list(ds.mean), std=list(ds.std),
                        augment=tuple(ds.augment), crop_padding=ds.crop_padding,
                        resized_crop_scale=tuple(ds.resized_crop_scale), drop_last=tr.drop_last, shard=shard,
                        workers=workers)

    def evaluation(split: Any) -> BatchLoader | None:
        return None if split is None else eval_loader(ds, tr, split, shard, workers=workers)

    loaders = (train, evaluation(splits.val), evaluation(splits.test),
               evaluation(splits.train if tr.eval_train else None))
    if keep_on_device(loaders, tr.data_on_device, device, tr.data_on_device_mb):
        log.info("data on the device: batches are gathered there by index (trainer.data_on_device=%s)",
                 tr.data_on_device)
    return loaders
