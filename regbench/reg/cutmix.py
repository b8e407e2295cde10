"""CutMix (Yun et al., ICCV 2019): paste a box from a permutation of each training batch, one λ and one box per batch
as in the paper's code; targets become Mixed (λ of the own label, 1 − λ of the other)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import paddle

from regbench.errors import UserError
from regbench.reg.box import box_mask, clipped_box
from regbench.reg.draws import Draw, DrawnTransform
from regbench.reg.mixed_targets import Targets, check_alpha, mix_labels


class CutMix(DrawnTransform):
    """With probability prob: λ ~ Beta(α, α), cut sides k = ⌊side·√(1 − λ)⌋, and the box [c − k//2, c + k//2) on each
    axis around a uniformly drawn pixel c, clipped at the borders (the paper's code and timm's rand_bbox), is pasted
    from x[perm]; λ is then recomputed from the clipped box, 1 − box area / image area. Otherwise the batch passes
    unchanged."""

    mixes = True

    def __init__(self, alpha: float, prob: float) -> None:
        check_alpha(alpha)
        if not 0.0 <= prob <= 1.0:
            raise UserError(f"cutmix prob must be in [0, 1] (got {prob})")
        self.alpha, self.prob = alpha, prob

    def draw(self, rng: np.random.Generator, b: int, h: int, w: int) -> Draw:
        """Whether to mix; if so λ, the box's centre row and column, then the permutation. Values: the clipped box's
        λ (none when the batch passes unchanged); vectors: the permutation, the box's top, bottom, left and right."""
        if not rng.random() < self.prob:
            return Draw()
        cut = math.sqrt(1.0 - rng.beta(self.alpha, self.alpha))
        row, col = rng.integers(0, h), rng.integers(0, w)
        box = clipped_box(np.array([row]), np.array([col]), int(h * cut), int(w * cut), h, w)
        return Draw(values=(float(box.lam[0]),), vectors=(rng.permutation(b), *box.sides))

    def apply(self, images: paddle.Tensor, labels: Targets, values: tuple[Any, ...],
              vectors: Sequence[paddle.Tensor]) -> tuple[paddle.Tensor, Targets]:
        if not values:
            return images, labels
        (lam,), (perm, *sides) = values, vectors
        _, _, h, w = images.shape
        inside = box_mask(*sides, h, w).astype(images.dtype)  # [1, 1, H, W]
        mixed = images * (1.0 - inside) + paddle.gather(images, perm) * inside
        return mixed, mix_labels(labels, perm, lam)
