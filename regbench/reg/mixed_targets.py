"""Training targets: hard labels, or two label sets mixed by λ (mixup, cutmix); their loss and train accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import paddle
import paddle.nn.functional as F

from regbench.errors import UserError


@dataclass(frozen=True)
class Mixed:
    """Sample i is lam[i] of class a[i] and 1 − lam[i] of class b[i]."""
    a: paddle.Tensor    # int64 [B]
    b: paddle.Tensor    # int64 [B]
    lam: paddle.Tensor  # float32 [B]


Targets = Union[paddle.Tensor, Mixed]


def check_alpha(alpha: float) -> None:
    """Refuse a Beta(α, α) parameter of λ that is not positive."""
    if not alpha > 0:
        raise UserError(f"the Beta(α, α) parameter alpha must be > 0 (got {alpha})")


def mix_labels(labels: Targets, perm: paddle.Tensor, lam: float) -> Mixed:
    """Each sample's labels mixed with those of sample perm[i], λ of its own."""
    if isinstance(labels, Mixed):  # combination.check refuses two label-mixing options; this guards direct use
        raise UserError("a batch can be label-mixed once: combine mixup or cutmix with other regularizers, not both")
    return Mixed(labels, paddle.gather(labels, perm), paddle.full([labels.shape[0]], lam, dtype="float32"))


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
