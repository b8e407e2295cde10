"""Learning-rate schedules as a run applies them: their length, and the lr each metrics line reports."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import read_jsonl, regbench

# 256 images in batches of 32: 8 steps per epoch
SMALL = ("model=mynet", "dataset=synthetic", "dataset.train_size=256", "dataset.test_size=32", "trainer.batch_size=32",
         "optim=sgd", "optim.lr=0.1")


def cosine(lr: float, step: int, length: int) -> float:
    """The lr of step `step` (0-based) of a cosine annealing over `length` steps down to 0."""
    return lr * (1 + math.cos(math.pi * step / length)) / 2


def logged_lrs(run: Path, *args: str) -> dict[int, float]:
    regbench("train", *SMALL, *args, f"hydra.run.dir={run}", cwd=run.parent)
    return {r["step"]: r["lr"] for r in read_jsonl(run / "metrics.jsonl")}


@pytest.mark.slow
def test_logged_lr_is_the_one_the_last_step_used(tmp_path: Path) -> None:
    # one epoch of 8 steps, evaluated after steps 4 and 8: they ran at the lr of steps 3 and 7 (0-based)
    lrs = logged_lrs(tmp_path / "run", "sched=cosine", "trainer.epochs=1", "trainer.eval_every_steps=4")
    assert lrs == pytest.approx({4: cosine(0.1, 3, 8), 8: cosine(0.1, 7, 8)}, rel=1e-6)
    assert lrs[8] > 0  # the lr after the last step would be the end of the annealing, 0


@pytest.mark.slow
def test_logged_lr_of_an_epoch_schedule_is_that_epochs(tmp_path: Path) -> None:
    # halved after every epoch: epoch 1 trained at 0.1, epoch 2 at 0.05
    lrs = logged_lrs(tmp_path / "run", "sched=step", "sched.interval=epoch", "sched.step_size=1", "sched.gamma=0.5",
                     "trainer.epochs=2")
    assert lrs == pytest.approx({8: 0.1, 16: 0.05}, rel=1e-6)


@pytest.mark.slow
def test_cosine_length_follows_max_steps(tmp_path: Path) -> None:
    # 3 epochs would be 24 steps; max_steps=8 makes the run, and so the annealing, 8 steps long
    lrs = logged_lrs(tmp_path / "run", "sched=cosine", "trainer.epochs=3", "trainer.max_steps=8",
                     "trainer.eval_every_steps=4")
    assert lrs == pytest.approx({4: cosine(0.1, 3, 8), 8: cosine(0.1, 7, 8)}, rel=1e-6)


@pytest.mark.slow
def test_epoch_cosine_length_follows_max_steps(tmp_path: Path) -> None:
    # 20 steps of 8 per epoch: 3 epochs (the last one cut short) instead of the configured 10
    lrs = logged_lrs(tmp_path / "run", "sched=cosine", "sched.interval=epoch", "trainer.epochs=10",
                     "trainer.max_steps=20")
    assert lrs == pytest.approx({8: cosine(0.1, 0, 3), 16: cosine(0.1, 1, 3), 20: cosine(0.1, 2, 3)}, rel=1e-6)
