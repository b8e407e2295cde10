"""Mixup (Zhang et al., ICLR 2018): mix each training batch with a permutation of itself, one λ per batch as in the
paper's code; targets become Mixed (λ of the own label, 1 − λ of the other)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import paddle

from regbench.reg.draws import Draw, DrawnTransform
from regbench.reg.mixed_targets import Targets, check_alpha, mix_labels


class Mixup(DrawnTransform):
    """λ ~ Beta(α, α); images λ·x + (1 − λ)·x[perm]; loss λ·CE(y) + (1 − λ)·CE(y[perm])."""

    mixes = True

    def __init__(self, alpha: float) -> None:
        check_alpha(alpha)
        self.alpha = alpha

    def draw(self, rng: np.random.Generator, b: int, h: int, w: int) -> Draw:
        """λ, then the permutation."""
        return Draw(values=(float(rng.beta(self.alpha, self.alpha)),), vectors=(rng.permutation(b),))

    def apply(self, images: paddle.Tensor, labels: Targets, values: tuple[Any, ...],
              vectors: Sequence[paddle.Tensor]) -> tuple[paddle.Tensor, Targets]:
        (lam,), (perm,) = values, vectors
        return lam * images + (1.0 - lam) * paddle.gather(images, perm), mix_labels(labels, perm, lam)
