"""The official CIFAR-10-C / CIFAR-100-C layout: a folder with one <corruption>.npy per corruption, uint8
[5n, H, W, 3] with severities 1-5 stacked in that order over the same n images, and labels.npy [5n]; the official
folders hold the 15 corruptions of Hendrycks & Dietterich (2019) and 4 extra ones."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.metrics.corruption import SEVERITIES

LABELS = "labels.npy"
LAYOUT = "uint8 [5n, H, W, 3] with severities 1-5 stacked in that order"
# the official files' names: the 15 corruptions of Hendrycks & Dietterich's benchmark (its mCE averages these), and
# the 4 the official folders add, meant for validation (speckle noise, Gaussian blur, spatter, saturate)
COMMON = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
          "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


def corruption_names(folder: Path) -> list[str]:
    """The corruptions in `folder` (each <name>.npy beside labels.npy), sorted; a UserError if it is not the layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: give a folder in the CIFAR-10-C layout "
                        f"(regbench corrupt --out DIR writes one)")
    if not (folder / LABELS).is_file():
        raise UserError(f"{folder} has no {LABELS}: the CIFAR-10-C layout has {LABELS} [5n] beside one "
                        f"<corruption>.npy per corruption")
    names = sorted(p.stem for p in folder.glob("*.npy") if p.name != LABELS)
    if not names:
        raise UserError(f"{folder} has {LABELS} but no <corruption>.npy: add the corruptions' files ({LAYOUT})")
    return names


def fingerprint(folder: Path) -> str:
    """A digest of the names, sizes and modification times of labels.npy and every corruption file: files regenerated,
    added or removed give another, without reading the gigabytes of an official folder once more to hash them."""
    folder = Path(folder)
    stats = {name: (folder / name).stat() for name in [LABELS, *(f"{n}.npy" for n in corruption_names(folder))]}
    listing = json.dumps({name: [s.st_size, s.st_mtime_ns] for name, s in stats.items()}, sort_keys=True)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def read_corruptions(folder: Path, image_size: int, channels: int, num_classes: int,
                     names: Sequence[str] | None = None) -> Iterator[tuple[str, int, Split]]:
    """(corruption, severity, its n images as a Split laid out as every loader's) for each corruption (all in the
    folder unless `names`) and severity 1-5; every file is checked against the run's dataset before the first yield."""
    folder = Path(folder)
    present = corruption_names(folder)
    unknown = [n for n in names or () if n not in present]
    if unknown:
        raise UserError(f"{folder} has no {', '.join(f'{n}.npy' for n in unknown)}: choose among {', '.join(present)}")
    labels = _labels(folder / LABELS, num_classes)
    files = {name: _images(folder / f"{name}.npy", len(labels), image_size, channels) for name in names or present}
    n = len(labels) // SEVERITIES
    for name, images in files.items():
        for severity in range(1, SEVERITIES + 1):
            block = images[(severity - 1) * n : severity * n]
            yield name, severity, Split(np.ascontiguousarray(block.transpose(0, 3, 1, 2)), labels[:n])


def _load(path: Path) -> np.ndarray:
    """A memory map of the .npy at `path`; never unpickles (object arrays are refused)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"cannot read {path} ({e}): write it with numpy.save as a plain array ({LAYOUT})") from None


def _labels(path: Path, num_classes: int) -> np.ndarray:
    """labels.npy as int64 [5n], checked: integers in 0..num_classes-1, the same n labels for every severity."""
    labels = _load(path)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or not len(labels) or len(labels) % SEVERITIES:
        raise UserError(f"{path} is {labels.dtype} {list(labels.shape)}: it must hold 5n integer labels, "
                        f"the n test labels once per severity 1-5")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise UserError(f"{path} has labels outside 0..{num_classes - 1}: use files made for this dataset "
                        f"({num_classes} classes)")
    blocks = labels.reshape(SEVERITIES, -1)
    if (blocks != blocks[0]).any():
        raise UserError(f"{path}: its five blocks of {blocks.shape[1]} labels differ, so its severities are not "
                        f"stacked 1-5 over the same images: use the official file or regbench corrupt")
    return labels


def _images(path: Path, count: int, image_size: int, channels: int) -> np.ndarray:
    """A corruption's memory-mapped images [5n, H, W, C], checked against labels.npy and the run's dataset."""
    images = _load(path)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise UserError(f"{path} is {images.dtype} {list(images.shape)}: it must be {LAYOUT}")
    if len(images) != count:
        raise UserError(f"{path} has {len(images)} images but {LABELS} has {count} labels: "
                        f"use files written together (one per corruption, 5n images each)")
    size, depth = images.shape[1:3], images.shape[3]
    if size != (image_size, image_size) or depth != channels:
        raise UserError(f"{path} holds {size[0]}x{size[1]}x{depth} images but the run's dataset has "
                        f"{image_size}x{image_size}x{channels}: use corrupted files of the run's dataset "
                        f"(regbench corrupt with its overrides)")
    return images
