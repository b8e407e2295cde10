"""Batch-level regularizers (cutout, mixup, cutmix): transforms of each training batch between the loader and the
model, (images, targets, rng) -> (images, targets), batched on the device. The trainer calls them in training only,
with a random stream derived from (seed, step), so they are identity in evaluation and resume exactly."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import paddle
from hydra.utils import instantiate
from omegaconf import DictConfig

from regbench.targets import BatchTransform, Targets


class BatchRegs:
    """The transforms of reg.batch, applied in the order the reg options were given."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        self.transforms = list(transforms)
        # some transform may return Mixed targets: train accuracy becomes the λ-weighted agreement
        self.mixes = any(getattr(t, "mixes", False) for t in self.transforms)

    def __call__(self, images: paddle.Tensor, targets: Targets, rng: np.random.Generator) -> tuple[paddle.Tensor, Targets]:
        for transform in self.transforms:
            images, targets = transform(images, targets, rng)
        return images, targets


def build_batch_regs(reg: DictConfig) -> BatchRegs | None:
    """The reg.batch transforms (None when there are none)."""
    transforms = [instantiate(node) for node in (reg.get("batch") or {}).values() if node is not None]
    return BatchRegs(transforms) if transforms else None
