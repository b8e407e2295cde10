"""Batches on the training device: slice uint8 images, then convert, augment and normalize with batched tensor ops."""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

from regbench.data.splits import Split
from regbench.errors import UserError

AUGMENTS = ("crop", "flip", "resized_crop")
_RATIO = (3.0 / 4.0, 4.0 / 3.0)  # random-resized-crop aspect ratio range, as torchvision
_ATTEMPTS = 10  # torchvision's tries before falling back to the whole image
# the input normalization's batch_norm epsilon: at least cuDNN's minimum (1e-5; Paddle logs every batch below it),
# and a power of two, so that the variance 1 - epsilon and the sum variance + epsilon are exact in float32: the
# normalization divides by exactly 1, as with epsilon 0
_BN_EPSILON = 2.0**-16


class BatchLoader:
    """Yields (float32 [B,C,H,W] normalized images, int64 [B] labels) on Paddle's current device."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        augment: Sequence[str] = (),
        crop_padding: int,
        resized_crop_scale: Sequence[float],
        drop_last: bool = False,
        shard: tuple[int, int] = (0, 1),
        even_shards: bool = True,
    ) -> None:
        unknown = [a for a in augment if a not in AUGMENTS]
        if unknown:
            raise UserError(f"unknown dataset.augment {unknown}: valid ones are {list(AUGMENTS)}")
        channels = split.images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise UserError(
                f"dataset.mean and dataset.std need {channels} values (one per channel), "
                f"got {len(mean)} and {len(std)}"
            )
        if batch_size < 1:
            raise UserError(f"batch size must be positive, got {batch_size}")
        if crop_padding < 0:
            raise UserError(f"dataset.crop_padding must be >= 0, got {crop_padding}")
        lo, hi = resized_crop_scale
        if not 0 < lo <= hi <= 1:
            raise UserError(f"dataset.resized_crop_scale must be [lo, hi] with 0 < lo <= hi <= 1, got {[lo, hi]}")
        self.split = split
        self.batch_size = batch_size
        self.augment = tuple(augment)
        self.crop_padding = int(crop_padding)
        self.resized_crop_scale = (float(lo), float(hi))
        # (x/255 - mean)/std = x*scale + shift per channel
        self._scale = np.array([1.0 / (255.0 * s) for s in std], np.float32)
        self._shift = np.array([-m / s for m, s in zip(mean, std)], np.float32)
        # data parallel: rank r of w takes samples r, r+w, ... of every epoch's order; with even_shards (training)
        # every rank gets N // w of them, so all ranks take the same number of steps
        self.rank, self.world = shard
        n = len(split) // self.world if even_shards else len(range(self.rank, len(split), self.world))
        self.shard_size = n
        self.num_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
        if self.num_batches == 0:
            raise UserError(
                f"a split of {n} images gives no batch of {batch_size}: lower the batch size or raise dataset.limit"
            )

    def epoch(self, seed: int | None, start: int = 0,
              augment_seed: int | None = None) -> Iterator[tuple[paddle.Tensor, paddle.Tensor]]:
        """Batches start.. of one epoch: shuffled by `seed` and augmented by `augment_seed` (default: `seed`); in order
        and plain when both are None.

        The caller passes different seeds each epoch; batch k depends only on (seeds, k), so start=k resumes exactly."""
        augment_seed = seed if augment_seed is None else augment_seed
        n = len(self.split)
        order = np.arange(n) if seed is None else np.random.default_rng([seed, 0]).permutation(n)
        order = order[self.rank :: self.world][: self.shard_size]
        scale, shift = paddle.to_tensor(self._scale), paddle.to_tensor(self._shift)
        zero, variance = paddle.zeros_like(scale), paddle.full_like(scale, 1.0 - _BN_EPSILON)
        for b in range(start, self.num_batches):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = paddle.to_tensor(self.split.images[idx]).astype("float32")
            if augment_seed is not None and self.augment:
                x = self._augment(x, np.random.default_rng([augment_seed, 1, b]))
            # inference batch_norm with mean 0 and variance + epsilon = 1 is a per-channel multiply-add in one
            # kernel, several times faster on CPU than Paddle's broadcasting x * scale + shift
            x = F.batch_norm(x, zero, variance, weight=scale, bias=shift, training=False, epsilon=_BN_EPSILON)
            yield x, paddle.to_tensor(self.split.labels[idx])

    def _augment(self, x: paddle.Tensor, rng: np.random.Generator) -> paddle.Tensor:
        """The batch's augmentations as one per-sample resampling, composed from the ops in list order."""
        b, _, h, w = x.shape
        # each op maps output to input pixel coordinates per axis, p_in = s*p_out + t (axis-aligned: crops,
        # flips, scaling); applying ops in list order composes their maps right to left
        sx, tx, sy, ty = np.ones(b), np.zeros(b), np.ones(b), np.zeros(b)
        for op in self.augment:
            osx, otx, osy, oty = getattr(self, f"_{op}")(rng, b, h, w)
            sx, tx, sy, ty = sx * osx, sx * otx + tx, sy * osy, sy * oty + ty
        return _resample(x, sx, tx, sy, ty)

    def _crop(self, rng: np.random.Generator, b: int, h: int, w: int) -> tuple[np.ndarray, ...]:
        """Zero-pad by crop_padding, crop back at a random offset: an integer shift in [-p, p] per axis."""
        p = self.crop_padding
        dy, dx = rng.integers(-p, p + 1, size=(2, b))
        return np.ones(b), dx.astype(float), np.ones(b), dy.astype(float)

    def _flip(self, rng: np.random.Generator, b: int, h: int, w: int) -> tuple[np.ndarray, ...]:
        """Horizontal flip with probability 1/2."""
        flip = rng.random(b) < 0.5
        return np.where(flip, -1.0, 1.0), np.where(flip, float(w), 0.0), np.ones(b), np.zeros(b)

    def _resized_crop(self, rng: np.random.Generator, b: int, h: int, w: int) -> tuple[np.ndarray, ...]:
        """torchvision's RandomResizedCrop box (area fraction in resized_crop_scale, aspect 3/4..4/3), resized back."""
        area = h * w * rng.uniform(*self.resized_crop_scale, size=(b, _ATTEMPTS))
        aspect = np.exp(rng.uniform(math.log(_RATIO[0]), math.log(_RATIO[1]), size=(b, _ATTEMPTS)))
        cw = np.rint(np.sqrt(area * aspect))
        ch = np.rint(np.sqrt(area / aspect))
        ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = ok.argmax(axis=1)
        rows = np.arange(b)
        cw, ch, found = cw[rows, first], ch[rows, first], ok[rows, first]
        # fallback, as torchvision: the largest central box whose aspect ratio is within range
        fw, fh = float(w), float(h)
        if w / h < _RATIO[0]:
            fh = float(round(w / _RATIO[0]))
        elif w / h > _RATIO[1]:
            fw = float(round(h * _RATIO[1]))
        cw, ch = np.where(found, cw, fw), np.where(found, ch, fh)
        top = np.where(found, np.floor(rng.random(b) * (h - ch + 1)), (h - ch) // 2)
        left = np.where(found, np.floor(rng.random(b) * (w - cw + 1)), (w - cw) // 2)
        return cw / w, left, ch / h, top


def _resample(x: paddle.Tensor, sx: np.ndarray, tx: np.ndarray, sy: np.ndarray, ty: np.ndarray) -> paddle.Tensor:
    """out[b] = rows[b] @ x[b] @ cols[b]^T: separable bilinear resampling, two batched matmuls.

    Faster on CPU than affine_grid + grid_sample, and exact for whole-pixel maps (weights 0 or 1)."""
    b, c, h, w = x.shape
    rows = paddle.to_tensor(_weights(sy, ty, h))  # [B, H_out, H_in]
    cols = paddle.to_tensor(_weights(sx, tx, w).transpose(0, 2, 1))  # [B, W_in, W_out]
    x = paddle.matmul(x.reshape([b, c * h, w]), cols).reshape([b, c, h, w])
    return paddle.matmul(rows.unsqueeze(1), x)


def _weights(s: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    """[B, n_out, n_in] linear-interpolation weights along one axis for p_in = s*p_out + t; zero outside the image."""
    u = s[:, None] * (np.arange(n) + 0.5) + t[:, None] - 0.5  # source index of each output pixel centre
    # within half a pixel of the image, take the edge pixel (as image resizing does); beyond: zero fill
    u = np.where((u >= -0.5) & (u <= n - 0.5), np.clip(u, 0, n - 1), u)
    return np.maximum(0.0, 1.0 - np.abs(u[:, :, None] - np.arange(n))).astype(np.float32)
