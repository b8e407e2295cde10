"""The box Cutout erases and CutMix pastes: sides around a centre pixel, clipped at the image borders as both papers'
code, and λ, the share of the image outside it (timm's cutmix_bbox_and_lam)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import paddle


@dataclass(frozen=True)
class Box:
    """Boxes rows [top, bottom) × columns [left, right), one per entry, and λ = 1 − box area / image area of each."""
    top: np.ndarray     # int64
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    lam: np.ndarray     # float64

    @property
    def sides(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(top, bottom, left, right), as vectors for the device."""
        return self.top, self.bottom, self.left, self.right


def clipped_box(rows: np.ndarray, cols: np.ndarray, height: int, width: int, h: int, w: int) -> Box:
    """Boxes of height × width around the centre pixels (rows[i], cols[i]) of an h × w image: [c − side//2,
    c + side//2) on each axis, clipped at the borders (the Cutout and CutMix papers' code, timm's rand_bbox, so an odd
    side loses a pixel), and λ of each clipped box."""
    top, bottom = np.maximum(rows - height // 2, 0), np.minimum(rows + height // 2, h)
    left, right = np.maximum(cols - width // 2, 0), np.minimum(cols + width // 2, w)
    return Box(top, bottom, left, right, 1.0 - (bottom - top) * (right - left) / (h * w))


def box_mask(top: paddle.Tensor, bottom: paddle.Tensor, left: paddle.Tensor, right: paddle.Tensor, h: int,
             w: int) -> paddle.Tensor:
    """[B, 1, h, w] float32: 1 inside box i of the B boxes (int64 [B] vectors on the device), 0 outside."""
    rows, cols = _span(top, bottom, h), _span(left, right, w)  # [B, h], [B, w]
    return (rows.unsqueeze(2) * cols.unsqueeze(1)).unsqueeze(1)


def _span(start: paddle.Tensor, end: paddle.Tensor, n: int) -> paddle.Tensor:
    """[B, n] float 1 on [start[i], end[i]), else 0."""
    index = paddle.arange(n, dtype="int64").unsqueeze(0)
    return ((index >= start.unsqueeze(1)) & (index < end.unsqueeze(1))).astype("float32")
