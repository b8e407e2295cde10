"""The training loop: steps, evaluation, schedules, checkpoints. Knows nothing about specific models or layers."""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import paddle

from regbench import metrics, run_dir
from regbench.data.batches import BatchLoader
from regbench.device import AMP_DTYPES, broadcast_unsynced_state, sum_over_ranks
from regbench.atomic_files import copy_file
from regbench.scoring import Scores, score
from regbench.train.checkpoint import load_checkpoint, load_optimizer_state, save_checkpoint
from regbench.train.stop import StopAgreement
from regbench.reg.batch import BatchRegs
from regbench.reg.mixed_targets import Targets, agreement, loss_fn
from regbench.reg.progress import following_progress

log = logging.getLogger("regbench")


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Interrupted(RuntimeError):
    """Training stopped on a signal after writing a checkpoint."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(f"stopped by signal {signum} at a checkpoint at step {step}; "
                         "rerun with trainer.resume=true to continue")
        self.signum = signum


def derive_seed(*keys: int) -> int:
    """A 31-bit seed derived from integers: every epoch and step gets its own independent random stream."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0] >> 1)


@dataclass
class Progress:
    """What a checkpoint must hold besides weights to continue exactly where training stopped."""
    step: int = 0
    best_val_acc: float = -1.0
    best_epoch: float | None = None
    # running sums since the last evaluation; train_time_s: seconds spent in training steps (producing the batch
    # included, as `regbench bench` times a step), not in evaluation, checkpoints or plots
    loss_sum: float = 0.0
    correct: float = 0.0  # λ-weighted under mixed targets
    seen: int = 0
    train_time_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LoopConfig:
    epochs: int
    eval_every: int
    eval_every_steps: int | None
    max_steps: int | None
    label_smoothing: float
    sched_interval: str
    # the streams of conf's seeds.*: each epoch's data order, its augmentation and batch regularizers, each step's
    # dropout-type masks (the initial weights are drawn before the loop)
    order_seed: int
    augment_seed: int
    noise_seed: int
    log_every: int
    stop_check_s: float  # data parallel: seconds of training between the ranks' agreements whether to stop
    amp: str  # off | fp16 | bf16 (already "off" where the device cannot)


def run_length(epochs: int, steps_per_epoch: int, max_steps: int | None) -> int:
    """The number of training steps a run takes: its epochs, cut at max_steps when set."""
    total = epochs * steps_per_epoch
    return min(total, max_steps) if max_steps else total


class Trainer:
    def __init__(self, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                 lr: paddle.optimizer.lr.LRScheduler, train: BatchLoader, val: BatchLoader,
                 test: BatchLoader | None, folder: Path, cfg: LoopConfig,
                 on_eval: Callable[[Progress], None], batch_reg: BatchRegs | None = None,
                 train_eval: BatchLoader | None = None) -> None:
        self.model, self.optimizer, self.lr = model, optimizer, lr
        # batch-level regularizers, called on each training batch; `mixes`: they may return Mixed targets
        self.batch_reg = batch_reg
        self.mixes = batch_reg is not None and batch_reg.mixes
        self.train_loader, self.val_loader, self.test_loader = train, val, test
        self.train_eval_loader = train_eval  # the training split in eval mode, scored at every evaluation if given
        self.folder, self.cfg, self.on_eval = folder, cfg, on_eval
        self.steps_per_epoch = train.num_batches
        self.total_steps = run_length(cfg.epochs, self.steps_per_epoch, cfg.max_steps)
        self.step_lr = float(optimizer.get_lr())  # the learning rate the last step used (logged with its metrics)
        self.scheduled = following_progress(model)  # the layers told the training progress before each step
        self.progress = Progress()
        self.scaler = paddle.amp.GradScaler() if cfg.amp == "fp16" else None  # bf16 has float32's range
        self.stop_signal: int | None = None
        # data parallel: every rank trains its shard; rank 0 alone writes checkpoints and calls on_eval
        self.rank, self.world = paddle.distributed.get_rank(), paddle.distributed.get_world_size()

    # -- checkpoints ------------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return run_dir.checkpoint(self.folder, run_dir.LAST)

    @property
    def best_path(self) -> Path:
        return run_dir.checkpoint(self.folder, run_dir.BEST)

    def resume(self) -> bool:
        """Load the last checkpoint if there is one; True when training continues from it."""
        if not self.last_path.exists():
            return False
        model_state, optim_state, trainer_state, scaler_state = load_checkpoint(self.last_path)
        self.model.set_state_dict(model_state)
        load_optimizer_state(self.optimizer, self.model, optim_state)
        # the checkpoint holds the lr the schedule had reached; replay this run's schedule to the checkpoint's step
        # instead: Paddle's cosine annealing is recursive (each lr from the last), so only the same chain of steps
        # gives the lr of an uninterrupted run bit for bit (its closed form differs in the last digits), and a run
        # whose length grew gets its new schedule's lr (a finished cosine would otherwise stay at its end value)
        reached, self.lr.last_epoch = self.lr.last_epoch, -1
        for _ in range(reached + 1):
            self.lr.step()
        self.progress = Progress(**trainer_state)
        if self.scaler is not None and scaler_state:  # none: a float32 run's or an older checkpoint, start afresh
            self.scaler.load_state_dict(scaler_state)
        return True

    def _checkpoint(self, improved: bool) -> None:
        if self.rank != 0:
            return
        # best first: when a write fails (a full disk), last.npz, from which a run resumes, stays a step behind best
        if improved:
            save_checkpoint(self.best_path, self.model, self.optimizer, asdict(self.progress), self.scaler)
            copy_file(self.best_path, self.last_path)
        else:
            save_checkpoint(self.last_path, self.model, self.optimizer, asdict(self.progress), self.scaler)

    # -- the loop -----------------------------------------------------------------------------------
    def epoch_of(self, step: int) -> float:
        return round(step / self.steps_per_epoch, 4)

    def train_step(self, images: paddle.Tensor, labels: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        """One optimization step at the current progress.step: (detached loss, number of right predictions)."""
        p = self.progress
        # dropout and batch-regularizer draws depend on the step (and rank) alone: exact resume
        rank = [self.rank] if self.world > 1 else []
        paddle.seed(derive_seed(self.cfg.noise_seed, 1, p.step, *rank))
        targets: Targets = labels
        if self.batch_reg is not None:
            # their draws are made ahead up to the next flush, which waits for the device anyway: a step waits for none
            until = (p.step // self.cfg.log_every + 1) * self.cfg.log_every
            images, targets = self.batch_reg.at_step(images, labels, p.step, until, self._batch_reg_stream)
        for layer in self.scheduled:
            layer.set_progress(p.step / self.total_steps)
        self.step_lr = float(self.optimizer.get_lr())
        if self.cfg.amp != "off":
            # O1: matmuls and convs in half precision, BatchNorm, softmax and the loss in float32
            with paddle.amp.auto_cast(level="O1", dtype=AMP_DTYPES[self.cfg.amp]):
                logits = self.model(images)
            loss = loss_fn(logits.astype("float32"), targets, self.cfg.label_smoothing)
        else:
            logits = self.model(images)
            loss = loss_fn(logits, targets, self.cfg.label_smoothing)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        # fresh names: the optimizer names the state it creates on its first step `{parameter}_{accumulator}_0`,
        # whatever the process built before, as checkpoint.load_optimizer_state expects
        with paddle.utils.unique_name.guard():
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        self.optimizer.clear_grad()
        if self.cfg.sched_interval == "step":
            self.lr.step()
        return loss.detach(), agreement(logits, targets)

    def _batch_reg_stream(self, step: int) -> np.random.Generator:
        """The batch regularizers' random stream of a step (and rank)."""
        rank = [self.rank] if self.world > 1 else []
        return np.random.default_rng([self.cfg.augment_seed, 2, step, *rank])

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[paddle.Tensor, paddle.Tensor]]:
        """Training batches start.. of `epoch`: in the order of order_seed, augmented by augment_seed."""
        return self.train_loader.epoch(seed=derive_seed(self.cfg.order_seed, 0, epoch), start=start,
                                       augment_seed=derive_seed(self.cfg.augment_seed, 0, epoch))

    def _due_for_eval(self, end_of_epoch: bool) -> bool:
        step = self.progress.step
        if step >= self.total_steps:
            return True
        if self.cfg.eval_every_steps:
            return step % self.cfg.eval_every_steps == 0
        return end_of_epoch and (step // self.steps_per_epoch) % self.cfg.eval_every == 0

    def score(self, loader: BatchLoader) -> Scores:
        """The model scored over an evaluation loader as every evaluation of this run is: by every data-parallel
        rank with rank 0's running statistics, so that the figures are those of the checkpoint rank 0 saves."""
        # each rank's batch norms have averaged their own shard's batches. Replacing the other ranks' running
        # statistics with rank 0's for good changes no training step (batch norm in train mode normalizes by the
        # batch's own statistics and never reads the running ones), and theirs were never saved: a resumed run
        # starts every rank from rank 0's too
        broadcast_unsynced_state(self.model)
        return score(self.model, loader, self.cfg.label_smoothing, self.cfg.amp)

    def _evaluate(self) -> None:
        p = self.progress
        train_loss = p.loss_sum / max(p.seen, 1)
        start = time.perf_counter()
        val = self.score(self.val_loader)
        val_loss, val_acc = val.loss, val.accuracy
        if self.train_eval_loader is not None:
            train_eval = self.score(self.train_eval_loader)
        eval_time_s = time.perf_counter() - start
        self.model.train()
        row = dict(epoch=self.epoch_of(p.step), step=p.step, lr=self.step_lr,
                   train_loss=train_loss, train_acc=p.correct / max(p.seen, 1),
                   **metrics.named("val", "evaluation", val.figures), train_time_s=round(p.train_time_s, 3),
                   train_img_per_s=round(p.seen / max(p.train_time_s, 1e-9), 1), eval_time_s=round(eval_time_s, 3))
        if self.train_eval_loader is not None:
            row.update(metrics.named("train_eval", "train_eval", train_eval.figures))
        if self.mixes:  # train_acc is the λ-weighted agreement with both labels of mixed samples
            row["train_targets"] = "mixed"
        p.history.append(row)
        improved = val_acc > p.best_val_acc
        if improved:
            p.best_val_acc, p.best_epoch = val_acc, row["epoch"]
        p.loss_sum, p.correct, p.seen, p.train_time_s = 0.0, 0, 0, 0.0
        self._checkpoint(improved)
        log.info("epoch %.2f step %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.0f img/s",
                 row["epoch"], p.step, train_loss, row["train_acc"], val_loss, val_acc, row["train_img_per_s"])
        if self.rank == 0:
            self.on_eval(p)

    def _flush(self, window: _Window) -> None:
        """Move the window's device-side sums into the progress record (one sync); stop on a non-finite loss."""
        p = self.progress
        loss_sum, correct, seen = sum_over_ranks([window.loss_sum.item(), window.correct.item(), window.seen])
        p.loss_sum += loss_sum
        p.correct += correct
        p.seen += int(seen)
        p.train_time_s += time.perf_counter() - window.tick
        window.reset()
        if not math.isfinite(p.loss_sum):
            raise Diverged(f"training loss became {p.loss_sum} by step {p.step}")

    def fit(self) -> None:
        """Train until epochs or max_steps are done, evaluating and checkpointing on the way.

        When `stop_signal` gets set (by a signal handler) on any rank, every rank stops after the same step: rank 0
        checkpoints, and all raise Interrupted. In a single process that step is the current one; data parallel, the
        ranks agree on it about every trainer.stop_check_s seconds (regbench/train/stop.py)."""
        p = self.progress
        stop_agreement = StopAgreement(p.step, self.cfg.stop_check_s) if self.world > 1 else None
        bar = _ProgressBar(self.total_steps, p.step)
        self.model.train()
        window = _Window()
        while p.step < self.total_steps:
            epoch, start = divmod(p.step, self.steps_per_epoch)
            for images, labels in self.batches(epoch, start):
                loss, right = self.train_step(images, labels)
                window.add(loss, right, labels.shape[0])
                p.step += 1
                end_of_epoch = p.step % self.steps_per_epoch == 0
                if end_of_epoch and self.cfg.sched_interval == "epoch":
                    self.lr.step()
                bar.update(p.step, epoch + 1, self.cfg.epochs, loss, self.cfg.log_every)
                if p.step % self.cfg.log_every == 0:
                    self._flush(window)
                if self._due_for_eval(end_of_epoch):
                    self._flush(window)
                    self._evaluate()
                    window.reset()  # evaluation, checkpoints and plots are not training time
                stop = self.stop_signal or 0
                if stop_agreement is not None:
                    stop = stop_agreement(p.step, stop)
                if stop:
                    self._flush(window)
                    self._checkpoint(improved=False)
                    bar.close()
                    raise Interrupted(stop, p.step)
                if p.step >= self.total_steps:
                    break
        bar.close()

    def test_last(self) -> Scores | None:
        """The weights training ended with scored on the test split (None when val is the test set)."""
        if self.test_loader is None:
            return None
        return self.score(self.test_loader)

    def test_best(self) -> Scores | None:
        """The best checkpoint scored on the test split (None when the dataset has none distinct from val)."""
        if self.world > 1:
            paddle.distributed.barrier()  # rank 0 has written the best checkpoint
        if self.test_loader is None or not self.best_path.exists():
            return None
        self.model.set_state_dict(load_checkpoint(self.best_path)[0])
        return self.score(self.test_loader)


class _Window:
    """Training loss and accuracy sums since the last flush, kept on the device to avoid a sync per step.

    In float64, which adds the steps' float32 terms exactly: the sums then do not depend on where the flushes fall,
    and a stop flushes after any step (data parallel, where the ranks' agreement falls), so that a resumed run logs
    the train_loss of a run never stopped."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss_sum = paddle.zeros([], dtype="float64")
        self.correct = paddle.zeros([], dtype="float64")
        self.seen, self.tick = 0, time.perf_counter()

    def add(self, loss: paddle.Tensor, correct: paddle.Tensor, n: int) -> None:
        self.loss_sum += loss.astype("float64") * n
        self.correct += correct.astype("float64")
        self.seen += n


class _ProgressBar:
    """A live bar on a terminal; a log line every `log_every` steps otherwise."""

    def __init__(self, total: int, initial: int) -> None:
        self.total, self.start_time, self.start_step = total, time.perf_counter(), initial
        self.tty = sys.stderr.isatty()
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=False)

    def update(self, step: int, epoch: int, epochs: int, loss: paddle.Tensor, log_every: int) -> None:
        # reading the loss synchronizes with the device, so only every 10th (bar) or log_every-th (log) step
        if self.tty:
            if step % 10 == 0:
                self.bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)
                self.bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            self.bar.update(step - self.bar.n)
        elif step % log_every == 0:
            rate = (step - self.start_step) / max(time.perf_counter() - self.start_time, 1e-9)
            log.info("epoch %d/%d step %d/%d loss %.4f (%.1f steps/s)", epoch, epochs, step, self.total, loss.item(), rate)

    def close(self) -> None:
        if self.tty:
            self.bar.close()
