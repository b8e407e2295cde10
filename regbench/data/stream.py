"""Image files read from disk per batch by paddle.io.DataLoader worker processes that decode (and, for the ImageNet
transform, crop) them; everything random is drawn from the epoch's seed and the sample's index, never worker state."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import paddle

from regbench.data.batches import resized_crop_maps
from regbench.data.decode import BadImage, Decode
from regbench.data.splits import Split
from regbench.errors import UserError

log = logging.getLogger("regbench")

BAD_IMAGE = ("fail", "skip")  # dataset.on_bad_image


@dataclass(frozen=True)
class FileSplit:
    """A split as image files and labels, read per batch (the in-memory Split's len, labels, head and take)."""

    paths: np.ndarray  # str [N]
    labels: np.ndarray  # int64 [N]
    decode: Decode
    on_bad_image: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        size = self.decode.image_size
        return self.decode.channels, size, size

    @property
    def worker_augment(self) -> tuple[str, ...]:
        """The augmentations the workers apply (on the full-size image): RandomResizedCrop under the ImageNet
        transform; the others are batched on the device as for in-memory data."""
        return ("resized_crop",) if self.decode.transform == "imagenet" else ()

    def head(self, n: int | None) -> FileSplit:
        return self if n is None else self.take(np.arange(min(n, len(self))))

    def take(self, indices: np.ndarray) -> FileSplit:
        return FileSplit(self.paths[indices], self.labels[indices], self.decode, self.on_bad_image)

    def batches(self, index_lists: Sequence[np.ndarray], augment_seed: int | None,
                crop_scale: tuple[float, float] | None,
                workers: int) -> Iterator[tuple[paddle.Tensor, paddle.Tensor, np.ndarray]]:
        """uint8 images and labels on the device and the unreadable samples (a host bool array; skipped ones, to drop)
        of each index list, read by `workers` processes (0: this one). With crop_scale, each sample is a
        RandomResizedCrop of its image drawn from (augment_seed, its index)."""
        dataset = _Files(self, augment_seed if crop_scale is not None else None, crop_scale)
        loader = paddle.io.DataLoader(dataset, batch_sampler=_Batches(index_lists), num_workers=workers,
                                      collate_fn=_collate, return_list=True)
        skipped = 0
        for idx, (images, labels, flags) in zip(index_lists, loader):
            bad = np.frombuffer(flags, dtype=bool)
            if bad.any():
                self._unreadable(np.asarray(idx)[bad])
                skipped += int(bad.sum())
            yield images, labels, bad
        warn_skipped(skipped)

    def _unreadable(self, indices: np.ndarray) -> None:
        """Fail with the first one's error, or warn about each (dataset.on_bad_image)."""
        for i in indices:
            try:
                self.decode.image(_read(self.paths[i]), str(self.paths[i]))
                error = f"cannot read image {self.paths[i]}: remove or replace it"  # readable now: it changed
            except UserError as e:
                error = str(e)
            if self.on_bad_image == "fail":
                raise UserError(error)
            log.warning("skipping an unreadable image: %s", error)


def decode_all(files: FileSplit) -> tuple[Split, list[str]]:
    """The split decoded into memory with the evaluation transform; the paths skipped as unreadable."""
    images = np.empty((len(files), *files.image_shape), np.uint8)  # filled in place: no second copy at the end
    kept, skipped = [], []
    for i, path in enumerate(files.paths):
        try:
            images[len(kept)] = files.decode.image(_read(path), str(path))
            kept.append(i)
        except BadImage as e:
            if files.on_bad_image == "fail":
                raise
            log.warning("skipping an unreadable image: %s", e)
            skipped.append(str(path))
    return Split(images[: len(kept)], files.labels[kept]), skipped


def warn_skipped(count: int) -> None:
    """The count of the images skipped as unreadable, each already named in a warning."""
    if count:
        log.warning("skipped %d unreadable image(s) named above (dataset.on_bad_image=skip)", count)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BadImage(f"cannot read image {path} ({e}): remove or replace it, or set dataset.on_bad_image=skip") from e


class _Batches:
    """A batch sampler that yields given index lists."""

    def __init__(self, index_lists: Sequence[np.ndarray]) -> None:
        self.index_lists = index_lists

    def __iter__(self) -> Iterator[list[int]]:
        return (list(map(int, idx)) for idx in self.index_lists)

    def __len__(self) -> int:
        return len(self.index_lists)


class _Files(paddle.io.Dataset):
    """Sample i of a FileSplit: (uint8 image, label, 1 if unreadable); unreadable ones as zeros, for the main process
    to name."""

    def __init__(self, files: FileSplit, augment_seed: int | None, crop_scale: tuple[float, float] | None) -> None:
        super().__init__()
        self.files, self.augment_seed, self.crop_scale = files, augment_seed, crop_scale

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int64, np.int32]:
        files = self.files
        path, label = str(files.paths[i]), files.labels[i]
        try:
            blob = _read(path)
            if self.augment_seed is None:
                return files.decode.image(blob, path), label, np.int32(0)
            rng = np.random.default_rng([self.augment_seed, 3, i])

            def box(w: int, h: int) -> tuple[float, float, float, float]:
                sx, tx, sy, ty = (v[0] for v in resized_crop_maps(rng, 1, h, w, self.crop_scale))
                return tx, ty, sx * w, sy * h

            return files.decode.cropped(blob, path, box), label, np.int32(0)
        except BadImage:
            return np.zeros(files.image_shape, np.uint8), label, np.int32(1)


def _collate(samples: list[tuple[np.ndarray, np.int64, np.int32]]) -> list[np.ndarray | bytes]:
    """Images and labels as arrays, which the loader turns into device tensors; the unreadable flags as the bytes of
    a bool array, which it passes through on the host: reading them then waits for no device."""
    images, labels, bad = zip(*samples)
    return [np.stack(images), np.array(labels, np.int64), np.array(bad, bool).tobytes()]
