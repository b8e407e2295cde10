"""Small copies of the official image-folder layouts, written with PIL: ImageNet's (and Imagenette's) train/<wnid>/,
val/<wnid>/ and Tiny-ImageNet's tiny-imagenet-200 folder. Each class has its own colour, plus noise and a size that
varies, so that labels can be checked from the pixels."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

WNIDS = ("n03000134", "n01440764", "n02102040")  # not in sorted order: classes are the sorted wnids
COLOURS = {"n01440764": (220, 40, 40), "n02102040": (40, 200, 40), "n03000134": (40, 40, 220)}


def jpeg(path: Path, colour: tuple[int, int, int], rng: np.random.Generator, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.array(colour) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def imagenet_tree(root: Path, train: int = 8, val: int = 3, side: int = 40, seed: int = 0,
                  wnids: Sequence[str] = WNIDS) -> Path:
    """root/train/<wnid>/<wnid>_<i>.JPEG and root/val/<wnid>/ILSVRC2012_val_<n>.JPEG (and a test/ of unlabelled
    images, as the official archive has, which is not read); classes beyond COLOURS' get a colour of their index."""
    rng = np.random.default_rng(seed)
    n = 0
    for c, wnid in enumerate(wnids):
        colour = COLOURS.get(wnid, (c * 37 % 256, c * 91 % 256, c * 53 % 256))
        for i in range(train):
            jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG", colour, rng, (side + 3 * i, side + i % 3))
        for _ in range(val):
            n += 1
            jpeg(root / "val" / wnid / f"ILSVRC2012_val_{n:08d}.JPEG", colour, rng, (side + n % 64, side))
    jpeg(root / "test" / "ILSVRC2012_test_00000001.JPEG", (0, 0, 0), rng, (side, side))
    return root


def tiny_imagenet_tree(root: Path, train: int = 8, val: int = 3, seed: int = 0) -> Path:
    """tiny-imagenet-200: wnids.txt, train/<wnid>/images/<wnid>_<i>.JPEG (and train/<wnid>/<wnid>_boxes.txt),
    val/images/val_<n>.JPEG with val/val_annotations.txt, test/images/test_<n>.JPEG; 64×64 images."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in WNIDS))
    lines = []
    n = 0
    for wnid in WNIDS:
        (root / "train" / wnid).mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(train):
            jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", COLOURS[wnid], rng, (64, 64))
        for _ in range(val):
            jpeg(root / "val" / "images" / f"val_{n}.JPEG", COLOURS[wnid], rng, (64, 64))
            lines.append(f"val_{n}.JPEG\t{wnid}\t0\t0\t63\t63\n")
            n += 1
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    jpeg(root / "test" / "images" / "test_0.JPEG", (0, 0, 0), rng, (64, 64))
    return root


def label_colours(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> float:
    """The largest difference between an image's mean colour and its label's class colour."""
    expected = np.array([COLOURS[classes[y]] for y in labels])
    return float(np.abs(images.mean(axis=(2, 3)) - expected).max())
