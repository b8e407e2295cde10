"""`regbench train`: the Hydra task that builds one run from its config, trains it and records the outcome.

The composition root: it wires data, model, batch regularizers, trackers and the trainer, and sits above all of them."""
from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import paddle
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from regbench import identity, metrics, regs, run_dir
from regbench.batchreg import build_batch_regs
from regbench.data import load_splits
from regbench.data.batches import BatchLoader, keep_on_device
from regbench.data.splits import Split
from regbench.device import amp_mode, select_device
from regbench.errors import UserError
from regbench.files import WriteFailed, remove_temporaries
from regbench.models import build_model
from regbench.models.summary import count_params
from regbench.scoring import Scores, eval_loader
from regbench.track import Trackers, open_trackers
from regbench.tune import NoObjective, objective
from regbench.train import speed, threads
from regbench.train.loop import Diverged, Interrupted, LoopConfig, Progress, Trainer, run_length
from regbench.train.optim import build_lr, build_optimizer
from regbench.train.shared_folder import require_shared_folder

log = logging.getLogger("regbench")


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


@contextmanager
def _stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """First SIGINT/SIGTERM: finish the step, checkpoint, stop. A second SIGINT (Ctrl-C) quits at once; a repeated
    SIGTERM is the same request, since senders repeat it (paddle.distributed.launch sends its workers up to three,
    0.2 s apart; a preemption signals every process of a node) and follow up with SIGKILL themselves."""
    def request_stop(signum: int, frame: Any) -> None:
        if trainer.stop_signal is None:
            log.warning("signal %d: stopping after this step%s", signum,
                        " (press Ctrl-C again to quit at once)" if signum == signal.SIGINT else "")
        trainer.stop_signal = trainer.stop_signal or signum
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals to the launcher
        previous = {}
    try:
        yield
    except Interrupted:
        # the process now exits with 128 + the signal; a SIGTERM repeated meanwhile, which the sender may still be
        # doing (the stop can come within a second), must not kill it first: not before the ranks have met after
        # rank 0 wrote summary.json, nor as Python exits (it restores the default action of signals it handles, not
        # of ignored ones)
        if signal.SIGTERM in previous:  # handled here, in the main thread
            del previous[signal.SIGTERM]
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def build_trainer(cfg: DictConfig, folder: Path, on_eval: Callable[[Progress], None]) -> tuple[Trainer, str]:
    """The run's trainer (model, data, optimizer, schedule) with the trainer's speed switches applied; its device."""
    tr = cfg.trainer
    device = select_device(tr.device)
    cpu_threads = threads.resolve(tr)
    amp = amp_mode(tr.amp, device)
    speed.configure(device, threads=cpu_threads, trainer=tr)
    log.info("CPU threads: %d (trainer.threads=%s)", cpu_threads, tr.threads)
    paddle.seed(cfg.seeds.init)
    model = build_model(cfg.model, cfg.act, cfg.reg)
    rank, world = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
    train, val, test, train_eval = _loaders(cfg, shard=(rank, world), device=device)
    if tr.fast_conv_bias and device == "cpu":
        speed.fast_conv_bias(model)
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
    loop_cfg = LoopConfig(epochs=tr.epochs, eval_every=tr.eval_every, eval_every_steps=tr.eval_every_steps,
                          max_steps=tr.max_steps, label_smoothing=tr.label_smoothing, sched_interval=cfg.sched.interval,
                          order_seed=cfg.seeds.order, augment_seed=cfg.seeds.augment, noise_seed=cfg.seeds.noise,
                          log_every=tr.log_every, stop_check_s=tr.stop_check_s, amp=amp)
    return Trainer(model, optimizer, lr, train, val, test, folder, loop_cfg, on_eval, build_batch_regs(cfg.reg),
                   train_eval), device


def _test_figures(start: str, scores: Scores | None) -> dict[str, float | None]:
    """summary.json's figures of a test scoring (all None without one): test_* of the best checkpoint, final_test_*
    of the last weights."""
    return metrics.named(start, "test", None if scores is None else scores.figures)


def _run(cfg: DictConfig, folder: Path, summary: dict[str, Any], trackers: Trackers) -> None:
    title = f"{summary['model']} · {summary['act']} · {summary['reg']} · {summary['dataset']} · seed {cfg.seed}"

    def on_eval(p: Progress) -> None:  # rank 0 only
        run_dir.write_metrics(folder / run_dir.METRICS, p.history)
        last = p.history[-1]
        summary.update(steps=p.step, epochs_completed=p.step // trainer.steps_per_epoch,
                       best_val_acc=p.best_val_acc, best_epoch=p.best_epoch, final_val_acc=last["val_acc"],
                       final_train_acc=last["train_acc"])
        run_dir.write_json(folder / run_dir.SUMMARY, summary)
        run_dir.plot_curves(folder / run_dir.CURVES, p.history, title)
        trackers.log(p.history)

    trainer, device = build_trainer(cfg, folder, on_eval)
    summary["total_params"], summary["trainable_params"] = count_params(trainer.model)
    summary["selected_on"] = "test" if trainer.test_loader is None else "val"  # test: val is the test set
    log.info("%s on %s: %d parameters, %d steps of batch %d (%d per epoch)", summary["model"], device,
             summary["total_params"], trainer.total_steps, cfg.trainer.batch_size, trainer.steps_per_epoch)
    if cfg.trainer.resume and trainer.resume():
        log.info("resumed from %s at step %d", trainer.last_path, trainer.progress.step)
        if trainer.progress.history and trainer.rank == 0:
            on_eval(trainer.progress)
    with _stop_on_signals(trainer):
        trainer.fit()
    summary.update(_test_figures("final_test", trainer.test_last()))
    summary.update(_test_figures("test", trainer.test_best()))
    if summary["test_acc"] is not None:
        log.info("best checkpoint (epoch %s, val acc %.4f): test acc %.4f", summary["best_epoch"],
                 summary["best_val_acc"], summary["test_acc"])


def train(cfg: DictConfig) -> float | NoObjective:
    """Hydra task: train one configuration in the job's run folder; record the outcome in summary.json. Returns the
    objective a sweeper may search on (hparams_search.optimized_metric; NoObjective when the run did not complete)."""
    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.runtime.output_dir)
    choices = hydra_cfg.runtime.choices
    summary_path = folder / run_dir.SUMMARY
    interrupted = code = None
    config_hash = identity.config_hash(cfg)
    previous = run_dir.read_json(summary_path) if cfg.trainer.resume else None
    if previous and previous.get("status") == "completed" and previous.get("config_hash") == config_hash:
        log.info("%s: already completed with this config, nothing to resume", folder)
        return objective(previous, cfg.hparams_search.optimized_metric)
    start = time.time() - (previous or {}).get("wall_time_s", 0.0)
    summary: dict[str, Any] = dict(
        status="running", model=choices.model, act=choices.act, reg=regs.label(cfg.reg), dataset=choices.dataset,
        optim=choices.optim, sched=choices.sched, experiment=choices.get("experiment"), seed=cfg.seed,
        epochs_completed=0, steps=0, best_val_acc=None, best_epoch=None, final_val_acc=None, final_train_acc=None,
        **_test_figures("test", None), **_test_figures("final_test", None), selected_on=None, total_params=None,
        trainable_params=None, wall_time_s=0.0, error=None, config_hash=config_hash,
        world_size=paddle.distributed.get_world_size())
    main = paddle.distributed.get_rank() == 0  # under data parallel, rank 0 alone writes the run folder
    trackers = Trackers({})
    try:
        if main:
            remove_temporaries(folder)  # of a write that a kill -9 cut short
            run_dir.write_json(summary_path, summary)
            trackers = open_trackers(cfg, folder, config_hash)
        _run(cfg, folder, summary, trackers)
        summary["status"] = "completed"
    except Interrupted as err:
        summary.update(status="interrupted", error=str(err))
        interrupted = err.signum
    except WriteFailed as err:  # a full disk or a file-size limit: what was written before is whole and kept
        summary.update(status="failed", error=f"{err}; free space, then rerun with trainer.resume=true to continue "
                                                 "from the last checkpoint")
        code = err.exit_code
    except (UserError, Diverged) as err:
        summary.update(status="diverged" if isinstance(err, Diverged) else "failed", error=str(err).splitlines()[0])
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        raise
    except Exception as err:  # a bug: keep the traceback in train.log, the run folder says failed
        log.exception("training failed")
        summary.update(status="failed", error=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    finally:
        summary["wall_time_s"] = round(time.time() - start, 2)
        if main:
            try:
                run_dir.write_json(summary_path, summary)
            except WriteFailed as err:
                if str(err) not in (summary["error"] or ""):  # say so, unless that is what went wrong already
                    stale = f"{run_dir.SUMMARY} is not up to date either ({err.cause})"
                    summary["error"] = f"{summary['error']}; {stale}" if summary["error"] else str(err)
                summary["status"], code = "failed", err.exit_code
        trackers.close(summary)
    if interrupted is not None:
        log.warning("%s", summary["error"])
        if paddle.distributed.get_world_size() > 1:  # rank 0 has written the summary before any rank exits:
            paddle.distributed.barrier()               # a launcher stops the other ranks when one exits
        raise SystemExit(128 + interrupted)
    if summary["status"] != "completed":
        log.error("%s: %s", summary["status"], summary["error"])
        if hydra_cfg.mode != RunMode.MULTIRUN:  # in a sweep the other jobs go on; the CLI exits non-zero at the end
            raise SystemExit(code or (2 if summary["status"] == "failed" else 1))
    return objective(summary, cfg.hparams_search.optimized_metric)
