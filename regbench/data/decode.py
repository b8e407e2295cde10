"""One image file to the network's input: decoded, converted to L or RGB, and resized or cropped to image_size²."""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from regbench.errors import UserError

TRANSFORMS = ("resize", "imagenet")


class BadImage(UserError):
    """An image file that cannot be read or decoded; the message names it."""


@dataclass(frozen=True)
class Decode:
    """How a file becomes a uint8 [C, image_size, image_size] array.

    transform `resize`: the whole image resized (bilinear) to image_size². `imagenet`: the evaluation transform of
    ImageNet papers, the shorter side resized to resize_size and the centre crop_size² cut out (resized to
    image_size² when the two differ); training crops come from `cropped` (RandomResizedCrop) instead."""

    channels: int
    image_size: int
    transform: str
    resize_size: int
    crop_size: int

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise UserError(f"dataset.transform={self.transform!r} is invalid: it must be one of {', '.join(TRANSFORMS)}")
        if self.channels not in (1, 3):
            raise UserError(f"dataset.channels must be 1 (grayscale) or 3 (RGB) for image folders, got {self.channels}")
        if self.transform == "imagenet" and not 1 <= self.crop_size <= self.resize_size:
            raise UserError(f"dataset.crop_size={self.crop_size} must be between 1 and dataset.resize_size="
                            f"{self.resize_size}: the centre crop is cut from the image resized to resize_size")

    def key(self) -> str:
        """What the decoded pixels depend on (for cache names)."""
        return f"{self.image_size}|{self.channels}|{self.transform}|{self.resize_size}|{self.crop_size}"

    def image(self, blob: bytes, where: str) -> np.ndarray:
        """The evaluation image of a file's bytes."""
        img = self.open(blob, where)
        try:
            if self.transform == "imagenet":
                img = _centre_crop(_shorter_side(img, self.resize_size), self.crop_size)
            return self._array(img.resize((self.image_size, self.image_size), Image.BILINEAR)
                               if img.size != (self.image_size, self.image_size) else img)
        except (OSError, ValueError) as e:  # a truncated file fails when its pixels are loaded
            raise _bad(where, e) from e

    def cropped(self, blob: bytes, where: str,
                box: Callable[[int, int], tuple[float, float, float, float]]) -> np.ndarray:
        """The (left, top, width, height) box that `box(width, height)` draws on the decoded full-size image,
        resized to image_size² (a training crop)."""
        img = self.open(blob, where)
        left, top, w, h = box(*img.size)
        try:
            return self._array(img.resize((self.image_size, self.image_size), Image.BILINEAR,
                                          box=(left, top, left + w, top + h)))
        except (OSError, ValueError) as e:
            raise _bad(where, e) from e

    def open(self, blob: bytes, where: str) -> Image.Image:
        """The decoded image in L or RGB mode."""
        try:
            img = Image.open(io.BytesIO(blob))
            return img.convert("L" if self.channels == 1 else "RGB")
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise _bad(where, e) from e

    def _array(self, img: Image.Image) -> np.ndarray:
        arr = np.asarray(img, dtype=np.uint8)
        return arr[None] if self.channels == 1 else arr.transpose(2, 0, 1)


def _bad(where: str, e: Exception) -> BadImage:
    return BadImage(f"cannot decode image {where} ({e}): remove or replace it, or set dataset.on_bad_image=skip")


def _shorter_side(img: Image.Image, size: int) -> Image.Image:
    """Resized so that its shorter side is `size`, the aspect ratio kept (torchvision's Resize(int))."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return img
    new_long = int(size * long / short)
    return img.resize((size, new_long) if w <= h else (new_long, size), Image.BILINEAR)


def _centre_crop(img: Image.Image, size: int) -> Image.Image:
    """The central size² square (torchvision's CenterCrop rounding)."""
    w, h = img.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))
