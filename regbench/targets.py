"""Training targets: hard labels, or two label sets mixed by λ (mixup, cutmix); their loss and train accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Union

import numpy as np
import paddle
import paddle.nn.functional as F


@dataclass(frozen=True)
class Mixed:
    """Sample i is lam[i] of class a[i] and 1 − lam[i] of class b[i]."""
    a: paddle.Tensor    # int64 [B]
    b: paddle.Tensor    # int64 [B]
    lam: paddle.Tensor  # float32 [B]


Targets = Union[paddle.Tensor, Mixed]


class BatchTransform(Protocol):
    """Batch-level regularizers as the trainer calls them: `mixes` when they may return Mixed targets."""

    mixes: bool

    def at_step(self, images: paddle.Tensor, targets: Targets, step: int, until: int,
                stream: Callable[[int], np.random.Generator]) -> tuple[paddle.Tensor, Targets]:
        """The batch of training step `step` transformed with draws from stream(step); the draws of the steps
        before `until` may be made at once."""


def loss_fn(logits: paddle.Tensor, targets: Targets, smoothing: float, reduction: str = "mean") -> paddle.Tensor:
    """Cross-entropy, with label smoothing (1-ε)·y + ε/C when ε > 0; of mixed targets λ·CE(y_a) + (1 − λ)·CE(y_b)."""
    if isinstance(targets, Mixed):
        per_sample = (targets.lam * _hard(logits, targets.a, smoothing, "none")
                      + (1.0 - targets.lam) * _hard(logits, targets.b, smoothing, "none"))
        return per_sample.mean() if reduction == "mean" else per_sample.sum()
    return _hard(logits, targets, smoothing, reduction)


def _hard(logits: paddle.Tensor, labels: paddle.Tensor, smoothing: float, reduction: str) -> paddle.Tensor:
    if smoothing:
        target = F.label_smooth(F.one_hot(labels, logits.shape[-1]), epsilon=smoothing)
        loss = F.cross_entropy(logits, target, soft_label=True, reduction=reduction)
    else:
        loss = F.cross_entropy(logits, labels, reduction=reduction)
    return loss.reshape([-1]) if reduction == "none" else loss


def agreement(logits: paddle.Tensor, targets: Targets) -> paddle.Tensor:
    """Right predictions in the batch (float32 sum): of mixed targets, λ·[pred = a] + (1 − λ)·[pred = b] per sample."""
    pred = logits.argmax(axis=1)
    if isinstance(targets, Mixed):
        return (targets.lam * (pred == targets.a).astype("float32")
                + (1.0 - targets.lam) * (pred == targets.b).astype("float32")).sum()
    return (pred == targets).astype("float32").sum()
