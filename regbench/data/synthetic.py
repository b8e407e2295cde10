"""Generated, learnable images: each class is an oriented stripe pattern with its own colour, plus noise."""
from __future__ import annotations

import numpy as np

from regbench.data.splits import Split, Splits

SEED = 20240607  # fixed: the same images for every run
CHUNK = 1024  # samples generated at a time, to bound memory for big sizes


def has_val(**load: object) -> bool:
    """No val split of its own: the test_size set is val unless dataset.val_size holds one out."""
    return False


def make_synthetic(channels: int, image_size: int, num_classes: int, train_size: int, test_size: int) -> Splits:
    """Deterministic uint8 images: train as train, a test_size set as val (no separate test split)."""
    rng = np.random.default_rng([SEED, 0])
    # per class: stripe orientation, stripe frequency (cycles per image) and a colour per channel
    angle = np.pi * np.arange(num_classes) / num_classes + rng.uniform(0, np.pi / (4 * num_classes), num_classes)
    freq = rng.uniform(2.0, 4.0, num_classes)
    colour = rng.uniform(-1.0, 1.0, (num_classes, channels))
    classes = (angle, freq, colour)
    return Splits(
        train=_sample(np.random.default_rng([SEED, 1]), train_size, image_size, classes),
        val=_sample(np.random.default_rng([SEED, 2]), test_size, image_size, classes),
        test=None,
        classes=tuple(f"class{c}" for c in range(num_classes)),
    )


def _sample(rng: np.random.Generator, n: int, size: int, classes: tuple[np.ndarray, ...]) -> Split:
    angle, freq, colour = classes
    labels = rng.permutation(np.arange(n) % len(angle)).astype(np.int64)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    images = np.empty((n, colour.shape[1], size, size), np.uint8)
    for lo in range(0, n, CHUNK):
        y = labels[lo : lo + CHUNK]
        k = len(y)
        # a random phase per sample, so the class is the pattern's orientation and colour, not a fixed template
        phase = rng.uniform(0, 2 * np.pi, (k, 1, 1))
        cos, sin, f = (v[y, None, None].astype(np.float32) for v in (np.cos(angle), np.sin(angle), freq))
        stripes = np.sin(2 * np.pi * f * (coords[None, None, :] * cos + coords[None, :, None] * sin) + phase)
        contrast = rng.uniform(0.3, 1.0, (k, 1, 1, 1))
        pixels = 0.5 + 0.1 * colour[y, :, None, None] + 0.2 * contrast * stripes[:, None]
        pixels = pixels + rng.normal(0.0, 0.25, pixels.shape)
        images[lo : lo + k] = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
    return Split(images, labels)
