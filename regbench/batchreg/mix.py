"""Mixup (Zhang et al., ICLR 2018) and CutMix (Yun et al., ICCV 2019): mix each training batch with a permutation
of itself, one λ per batch as in both papers' code; targets become Mixed (λ of the own label, 1 − λ of the other)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import paddle

from regbench.batchreg.draws import Draw, DrawnTransform
from regbench.errors import UserError
from regbench.targets import Mixed, Targets


def _check_alpha(alpha: float) -> None:
    if not alpha > 0:
        raise UserError(f"the Beta(α, α) parameter alpha must be > 0 (got {alpha})")


def _mixed(labels: Targets, perm: paddle.Tensor, lam: float) -> Mixed:
    if isinstance(labels, Mixed):  # regs.check refuses two label-mixing options; this guards direct use
        raise UserError("a batch can be label-mixed once: combine mixup or cutmix with other regularizers, not both")
    return Mixed(labels, paddle.gather(labels, perm), paddle.full([labels.shape[0]], lam, dtype="float32"))


class Mixup(DrawnTransform):
    """λ ~ Beta(α, α); images λ·x + (1 − λ)·x[perm]; loss λ·CE(y) + (1 − λ)·CE(y[perm])."""

    mixes = True

    def __init__(self, alpha: float) -> None:
        _check_alpha(alpha)
        self.alpha = alpha

    def draw(self, rng: np.random.Generator, b: int, h: int, w: int) -> Draw:
        """λ, then the permutation."""
        return Draw(values=(float(rng.beta(self.alpha, self.alpha)),), vectors=(rng.permutation(b),))

    def apply(self, images: paddle.Tensor, labels: Targets, values: tuple[Any, ...],
              vectors: Sequence[paddle.Tensor]) -> tuple[paddle.Tensor, Targets]:
        (lam,), (perm,) = values, vectors
        return lam * images + (1.0 - lam) * paddle.gather(images, perm), _mixed(labels, perm, lam)


class CutMix(DrawnTransform):
    """With probability prob: λ ~ Beta(α, α), cut sides k = ⌊side·√(1 − λ)⌋, and the box [c − k//2, c + k//2) on each
    axis around a uniformly drawn pixel c, clipped at the borders (the paper's code and timm's rand_bbox), is pasted
    from x[perm]; λ is then recomputed from the clipped box, 1 − box area / image area. Otherwise the batch passes
    unchanged."""

    mixes = True

    def __init__(self, alpha: float, prob: float) -> None:
        _check_alpha(alpha)
        if not 0.0 <= prob <= 1.0:
            raise UserError(f"cutmix prob must be in [0, 1] (got {prob})")
        self.alpha, self.prob = alpha, prob

    def draw(self, rng: np.random.Generator, b: int, h: int, w: int) -> Draw:
        """Whether to mix; if so λ, the box's centre row and column, then the permutation. Values: the clipped box's
        λ (none when the batch passes unchanged); vectors: the permutation, the box's rows and columns (0/1)."""
        if not rng.random() < self.prob:
            return Draw()
        cut = math.sqrt(1.0 - rng.beta(self.alpha, self.alpha))
        (top, bottom), (left, right) = (_clipped(rng, n, int(n * cut)) for n in (h, w))
        rows, cols = np.zeros(h, np.int64), np.zeros(w, np.int64)
        rows[top:bottom], cols[left:right] = 1, 1
        lam = 1.0 - (bottom - top) * (right - left) / (h * w)
        return Draw(values=(lam,), vectors=(rng.permutation(b), rows, cols))

    def apply(self, images: paddle.Tensor, labels: Targets, values: tuple[Any, ...],
              vectors: Sequence[paddle.Tensor]) -> tuple[paddle.Tensor, Targets]:
        if not values:
            return images, labels
        (lam,), (perm, rows, cols) = values, vectors
        inside = (rows.unsqueeze(1) * cols.unsqueeze(0)).astype(images.dtype)
        mixed = images * (1.0 - inside) + paddle.gather(images, perm) * inside
        return mixed, _mixed(labels, perm, lam)


def _clipped(rng: np.random.Generator, n: int, length: int) -> tuple[int, int]:
    """[c − length//2, c + length//2) ∩ [0, n) around a uniform pixel c of 0..n-1."""
    centre = int(rng.integers(0, n))
    return max(centre - length // 2, 0), min(centre + length // 2, n)
