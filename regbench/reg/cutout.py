"""Cutout (DeVries & Taylor 2017): erase one square per training image."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import paddle

from regbench.errors import UserError
from regbench.reg.box import box_mask, clipped_box
from regbench.reg.draws import Draw, DrawnTransform
from regbench.reg.mixed_targets import Targets


class Cutout(DrawnTransform):
    """Zero one square per image, rows and columns [c − size//2, c + size//2) around a uniformly drawn pixel c,
    clipped at the image borders: the paper's code, so an odd size erases (size − 1)² pixels before clipping.

    Images arrive normalized, so erased pixels are 0 after normalization, as in the paper's code (which applies it
    after ToTensor and Normalize). Targets pass through unchanged.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise UserError(f"cutout size must be >= 1 (got {size})")
        self.size = size

    def draw(self, rng: np.random.Generator, b: int, h: int, w: int) -> Draw:
        """Each image's centre row and column; vectors: its square's top, bottom, left and right."""
        if self.size > min(h, w):
            raise UserError(f"reg.cutout.size={self.size} is larger than the {h}×{w} images: give at most {min(h, w)}")
        rows, cols = rng.integers(0, h, b), rng.integers(0, w, b)
        return Draw(vectors=clipped_box(rows, cols, self.size, self.size, h, w).sides)

    def apply(self, images: paddle.Tensor, targets: Targets, values: tuple[Any, ...],
              vectors: Sequence[paddle.Tensor]) -> tuple[paddle.Tensor, Targets]:
        _, _, h, w = images.shape
        erased = box_mask(*vectors, h, w)  # [B, 1, H, W]
        return images * (1.0 - erased).astype(images.dtype), targets
