"""In-memory dataset splits: uint8 images and int64 labels, as every loader returns them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from regbench.errors import UserError


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return self.images.shape[1:]

    def head(self, n: int | None) -> Split:
        """The first n samples (all when n is None)."""
        return self if n is None else Split(self.images[:n], self.labels[:n])

    def take(self, indices: np.ndarray) -> Split:
        """The samples at `indices`, in that order."""
        return Split(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class Splits:
    """In-memory splits, or file lists read per batch (stream.FileSplit: the same len, labels, head, take)."""
    train: Split
    val: Split
    test: Split | None  # None when the dataset has no test split distinct from val: val is the test set
    classes: tuple[str, ...]


def stratified_split(labels: np.ndarray, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Indices of parts of `sizes` samples each, every class in proportion to its share of `labels`, and of the rest:
    [rest, part 1, part 2, ...], each in a mixed order (so that dataset.limit keeps every class).

    A class's quota for a part is its proportional share rounded by largest remainder (ties: lower class first); a
    fixed `seed` gives the same split for every run."""
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.stack([_apportion(size, counts) for size in sizes]) if sizes else np.zeros((0, len(classes)), int)
    short = quotas.sum(axis=0) > counts
    if short.any():
        c = int(np.argmax(short))
        raise UserError(f"class {classes[c]} has {counts[c]} images, too few for held-out parts of {list(sizes)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(sizes) + 1)]
    for c, cls in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        bounds = np.cumsum(quotas[:, c])
        for p, (lo, hi) in enumerate(zip([0, *bounds[:-1]], bounds)):
            parts[p + 1].append(idx[lo:hi])
        parts[0].append(idx[bounds[-1] if len(bounds) else 0 :])
    return [rng.permutation(np.concatenate(p)) for p in parts]


def _apportion(size: int, counts: np.ndarray) -> np.ndarray:
    """`size` split over classes in proportion to `counts`, by largest remainder."""
    exact = size * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: size - quota.sum()]] += 1
    return quota


def held_out_size(val_size: float, n: int) -> int:
    """dataset.val_size as a number of images: an integer is one, a fraction in (0, 1) is that share of n."""
    return round(val_size * n) if isinstance(val_size, float) and 0 < val_size < 1 else int(val_size)


def carve_val(splits: Splits, val_size: float, seed: int) -> Splits:
    """A class-stratified val split of `val_size` images carved out of train; the old val becomes the test split.

    For datasets whose val is their test set (test is None); the split depends on `seed` (dataset.split_seed) alone,
    never the run seed."""
    n = held_out_size(val_size, len(splits.train))
    if not 0 < n < len(splits.train):
        raise UserError(f"dataset.val_size={val_size} gives {n} of {len(splits.train)} training images: "
                        f"give a number of images (or a fraction) that leaves both parts non-empty, or 0")
    rest, val = stratified_split(splits.train.labels, [n], seed)
    return Splits(train=splits.train.take(rest), val=splits.train.take(val), test=splits.val, classes=splits.classes)
