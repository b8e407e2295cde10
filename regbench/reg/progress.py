"""Regularizers whose strength follows training progress, as DropBlock's linear keep_prob ramp: the trainer tells
them how far training is before each step."""
from __future__ import annotations

from abc import ABC, abstractmethod

import paddle.nn as nn


class FollowsProgress(ABC):
    """A layer whose strength depends on training progress; the trainer calls set_progress(step / total steps) before
    each training step (and `trainer.compile` leaves it eager: a static graph would freeze it)."""

    @abstractmethod
    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1]."""


def following_progress(model: nn.Layer) -> list[FollowsProgress]:
    """The layers of `model`, itself included, that follow training progress."""
    return [m for m in model.sublayers(include_self=True) if isinstance(m, FollowsProgress)]
