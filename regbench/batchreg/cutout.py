"""Cutout (DeVries & Taylor 2017): erase one square per training image."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import paddle

from regbench.batchreg.draws import Draw, DrawnTransform
from regbench.errors import UserError
from regbench.targets import Targets


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
        """Each image's centre row and column."""
        if self.size > min(h, w):
            raise UserError(f"reg.cutout.size={self.size} is larger than the {h}×{w} images: give at most {min(h, w)}")
        return Draw(vectors=(rng.integers(0, h, b), rng.integers(0, w, b)))

    def apply(self, images: paddle.Tensor, targets: Targets, values: tuple[Any, ...],
              vectors: Sequence[paddle.Tensor]) -> tuple[paddle.Tensor, Targets]:
        _, _, h, w = images.shape
        row_centres, col_centres = vectors
        rows = _span(row_centres, self.size, h)  # [B, H]
        cols = _span(col_centres, self.size, w)  # [B, W]
        erased = rows.unsqueeze(2) * cols.unsqueeze(1)  # [B, H, W]
        return images * (1.0 - erased.unsqueeze(1)).astype(images.dtype), targets


def _span(centres: paddle.Tensor, size: int, n: int) -> paddle.Tensor:
    """[B, n] float 1 on [c − size//2, c + size//2) ∩ [0, n) for each centre c, else 0."""
    centre = centres.unsqueeze(1)
    index = paddle.arange(n, dtype="int64").unsqueeze(0)
    return ((index >= centre - size // 2) & (index < centre + size // 2)).astype("float32")
