"""Batches on the training device: slice uint8 images (or read them from files, stream.FileSplit), then convert,
augment and normalize with batched tensor ops."""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

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


def on_device(setting: bool | str, device: str, nbytes: int, limit_mb: float) -> bool:
    """Whether batches are built from a copy of the splits on the device (trainer.data_on_device): `auto` does so on
    a GPU when the splits' `nbytes` fit in `limit_mb`; on the CPU the host arrays already are on the device."""
    if setting == "auto":
        return device != "cpu" and nbytes <= limit_mb * 2**20
    return bool(setting)


def keep_on_device(loaders: Sequence[BatchLoader | None], setting: bool | str, device: str,
                   limit_mb: float) -> bool:
    """Copy the loaders' splits to the device once each (a split shared by loaders once) when `on_device` says so,
    and have the loaders build their batches there; whether it did."""
    splits = {id(lo.split): lo.split for lo in loaders if lo is not None and isinstance(lo.split, Split)}
    nbytes = sum(s.images.nbytes + s.labels.nbytes for s in splits.values())
    if not on_device(setting, device, nbytes, limit_mb):
        return False
    copies = {key: DeviceSplit(split) for key, split in splits.items()}
    for lo in loaders:
        if lo is not None and id(lo.split) in copies:
            lo.use_device_split(copies[id(lo.split)])
    return True


class DeviceSplit:
    """A split's uint8 images and int64 labels copied to Paddle's current device once, for batches gathered there."""

    def __init__(self, split: Split) -> None:
        self.images = paddle.to_tensor(split.images)
        self.labels = paddle.to_tensor(split.labels)


class BatchLoader:
    """Yields (float32 [B,C,H,W] normalized images, int64 [B] labels) on Paddle's current device."""

    def __init__(
        self,
        split: Split | Any,  # or a stream.FileSplit, read by `workers` processes
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
        workers: int = 0,
    ) -> None:
        unknown = [a for a in augment if a not in AUGMENTS]
        if unknown:
            raise UserError(f"unknown dataset.augment {unknown}: valid ones are {list(AUGMENTS)}")
        channels = split.image_shape[0]
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
        # a FileSplit's workers apply some ops to the full-size image (before the others, whatever the list order)
        self.worker_augment = tuple(a for a in self.augment if a in getattr(split, "worker_augment", ()))
        self.device_augment = tuple(a for a in self.augment if a not in self.worker_augment)
        self.workers = workers
        self.crop_padding = int(crop_padding)
        self.resized_crop_scale = (float(lo), float(hi))
        # (x/255 - mean)/std = x*scale + shift per channel
        self._scale = np.array([1.0 / (255.0 * s) for s in std], np.float32)
        self._shift = np.array([-m / s for m, s in zip(mean, std)], np.float32)
        self.device_split: DeviceSplit | None = None  # set by use_device_split
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

    def use_device_split(self, device_split: DeviceSplit) -> None:
        """Build batches from `device_split` (this loader's split on the device): a step copies nothing to it."""
        self.device_split = device_split

    def epoch(self, seed: int | None, start: int = 0,
              augment_seed: int | None = None) -> Iterator[tuple[paddle.Tensor, paddle.Tensor]]:
        """Batches start.. of one epoch: shuffled by `seed` and augmented by `augment_seed` (default: `seed`); in order
        and plain when both are None.

        The caller passes different seeds each epoch; batch k depends only on (seeds, k), so start=k resumes exactly.
        With a device split, the same batches are gathered on the device by index; the epoch's order and the source
        coordinates of all its batches' augmentations go to the device at its start, in one copy each."""
        augment_seed = seed if augment_seed is None else augment_seed
        n = len(self.split)
        order = np.arange(n) if seed is None else np.random.default_rng([seed, 0]).permutation(n)
        order = order[self.rank :: self.world][: self.shard_size]
        scale, shift = paddle.to_tensor(self._scale), paddle.to_tensor(self._shift)
        zero, variance = paddle.zeros_like(scale), paddle.full_like(scale, 1.0 - _BN_EPSILON)
        augmenting = augment_seed is not None and bool(self.device_augment)
        bounds = [(b * self.batch_size, min((b + 1) * self.batch_size, len(order)))
                  for b in range(start, self.num_batches)]
        if self.device_split is None:
            batches = self._host_batches(order, bounds, augment_seed if augmenting else None, augment_seed)
        else:
            batches = self._device_batches(self.device_split, order, bounds, augment_seed if augmenting else None)
        for x, labels in batches:
            # inference batch_norm with mean 0 and variance + epsilon = 1 is a per-channel multiply-add in one
            # kernel, several times faster on CPU than Paddle's broadcasting x * scale + shift
            yield F.batch_norm(x, zero, variance, weight=scale, bias=shift, training=False, epsilon=_BN_EPSILON), labels

    def _host_batches(self, order: np.ndarray, bounds: list[tuple[int, int]], augment_seed: int | None,
                      worker_seed: int | None) -> Iterator[tuple[paddle.Tensor, paddle.Tensor]]:
        """Float32 images and labels of each batch, sliced from the host arrays (or read from the files, cropped by
        the workers with worker_seed) and copied to the device."""
        h, w = self.split.image_shape[1:]
        index_lists = [order[lo:hi] for lo, hi in bounds]
        if isinstance(self.split, Split):
            source = ((self.split.images[idx], self.split.labels[idx], None) for idx in index_lists)
        else:
            crop = self.resized_crop_scale if self.worker_augment and worker_seed is not None else None
            source = self.split.batches(index_lists, worker_seed, crop, self.workers)
        for (images, labels, unreadable), (lo, hi) in zip(source, bounds):  # source first: it runs to its end
            x = _tensor(images).astype("float32")
            if augment_seed is not None:
                sx, tx, sy, ty = self._maps(np.random.default_rng([augment_seed, 1, lo // self.batch_size]), hi - lo)
                x = _resample(x, paddle.to_tensor(_weights(np, _sources(sy, ty, h))),
                              paddle.to_tensor(_weights(np, _sources(sx, tx, w), transposed=True)))
            labels = _tensor(labels)
            if unreadable is not None and unreadable.any():  # skipped (dataset.on_bad_image=skip)
                if unreadable.all():
                    raise UserError(f"every image of a batch of {hi - lo} is unreadable (named above): "
                                    "check dataset.root")
                keep = paddle.to_tensor(np.flatnonzero(~unreadable))
                x, labels = paddle.gather(x, keep), paddle.gather(labels, keep)
            yield x, labels

    def _device_batches(self, split: DeviceSplit, order: np.ndarray, bounds: list[tuple[int, int]],
                        augment_seed: int | None) -> Iterator[tuple[paddle.Tensor, paddle.Tensor]]:
        """The batches of _host_batches, gathered from the device split: the same numbers, no copy per batch."""
        if not bounds:
            return
        h, w = self.split.image_shape[1:]
        first = bounds[0][0]
        indices = paddle.to_tensor(order[first:])
        if augment_seed is not None:  # every batch's maps of the epoch, drawn as _host_batches draws them
            maps = [self._maps(np.random.default_rng([augment_seed, 1, lo // self.batch_size]), hi - lo)
                    for lo, hi in bounds]
            rows = paddle.to_tensor(np.concatenate([_sources(sy, ty, h) for _, _, sy, ty in maps]))
            cols = paddle.to_tensor(np.concatenate([_sources(sx, tx, w) for sx, tx, _, _ in maps]))
        for lo, hi in bounds:
            idx = indices[lo - first : hi - first]
            x = paddle.gather(split.images, idx).astype("float32")
            if augment_seed is not None:
                x = _resample(x, _weights(paddle, rows[lo - first : hi - first]),
                              _weights(paddle, cols[lo - first : hi - first], transposed=True))
            yield x, paddle.gather(split.labels, idx)

    def _maps(self, rng: np.random.Generator, b: int) -> tuple[np.ndarray, ...]:
        """The batch's augmentations as one per-sample pixel map p_in = s*p_out + t per axis: (sx, tx, sy, ty).

        Composed from the ops in list order (axis-aligned: crops, flips, scaling); applying ops in list order
        composes their maps right to left."""
        h, w = self.split.image_shape[1:]
        sx, tx, sy, ty = np.ones(b), np.zeros(b), np.ones(b), np.zeros(b)
        for op in self.device_augment:
            osx, otx, osy, oty = getattr(self, f"_{op}")(rng, b, h, w)
            sx, tx, sy, ty = sx * osx, sx * otx + tx, sy * osy, sy * oty + ty
        return sx, tx, sy, ty

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
        return resized_crop_maps(rng, b, h, w, self.resized_crop_scale)


def resized_crop_maps(rng: np.random.Generator, b: int, h: int, w: int,
                      scale: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """torchvision's RandomResizedCrop box (area fraction in `scale`, aspect 3/4..4/3) of an h×w image as the map
    (sx, tx, sy, ty) that resizes it back: the box is tx, ty, sx*w wide and sy*h high."""
    area = h * w * rng.uniform(*scale, size=(b, _ATTEMPTS))
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


def _tensor(a: np.ndarray | paddle.Tensor) -> paddle.Tensor:
    return a if isinstance(a, paddle.Tensor) else paddle.to_tensor(a)


def _resample(x: paddle.Tensor, rows: paddle.Tensor, cols: paddle.Tensor) -> paddle.Tensor:
    """out[b] = rows[b] @ x[b] @ cols[b]: separable bilinear resampling, two batched matmuls.

    Faster on CPU than affine_grid + grid_sample, and exact for whole-pixel maps (weights 0 or 1)."""
    b, c, h, w = x.shape
    x = paddle.matmul(x.reshape([b, c * h, w]), cols).reshape([b, c, h, w])
    return paddle.matmul(rows.unsqueeze(1), x)


def _sources(s: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    """float64 [B, n_out]: the input coordinate of each output pixel centre along one axis for p_in = s*p_out + t."""
    u = s[:, None] * (np.arange(n) + 0.5) + t[:, None] - 0.5
    # within half a pixel of the image, take the edge pixel (as image resizing does); beyond: zero fill
    return np.where((u >= -0.5) & (u <= n - 0.5), np.clip(u, 0, n - 1), u)


def _weights(xp: Any, u: Any, transposed: bool = False) -> Any:
    """float32 [B, n_out, n_in] (transposed: [B, n_in, n_out]) linear-interpolation weights of the input coordinates
    `u` [B, n_out] (_sources); zero beyond a pixel.

    `xp` is numpy (host arrays) or paddle (device tensors): the same float64 operations, so the same numbers."""
    pixels = xp.arange(u.shape[1], dtype=u.dtype)
    distance = u[:, None, :] - pixels[:, None] if transposed else u[:, :, None] - pixels
    near = 1.0 - xp.abs(distance)
    return (np.maximum(near, 0.0) if xp is np else paddle.clip(near, min=0.0)).astype("float32")  # numpy's faster
