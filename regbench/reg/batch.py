"""Batch-level regularizers (cutout, mixup, cutmix): transforms of each training batch between the loader and the
model, batched on the device. The trainer calls them in training only, with a random stream derived from (seed,
step), so they are identity in evaluation and resume exactly; the draws of the steps up to the trainer's next sync
with the device are made at once and reach it in one copy (draws.py)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import paddle
from hydra.utils import instantiate
from omegaconf import DictConfig

from regbench.reg.draws import DrawnTransform, DrawsAhead, Stream
from regbench.reg.mixed_targets import Targets


class BatchRegs:
    """The transforms of reg.batch, applied in the order the reg options were given."""

    def __init__(self, transforms: Sequence[DrawnTransform]) -> None:
        self.transforms = list(transforms)
        # some transform may return Mixed targets: train accuracy becomes the λ-weighted agreement
        self.mixes = any(t.mixes for t in self.transforms)
        self._ahead: DrawsAhead | None = None

    def __call__(self, images: paddle.Tensor, targets: Targets, rng: np.random.Generator) -> tuple[paddle.Tensor, Targets]:
        """One batch with draws from rng, each transform's vectors copied to the device on their own."""
        for transform in self.transforms:
            images, targets = transform(images, targets, rng)
        return images, targets

    def at_step(self, images: paddle.Tensor, targets: Targets, step: int, until: int,
                stream: Stream) -> tuple[paddle.Tensor, Targets]:
        """The batch of training step `step`, with draws from stream(step): the same numbers as
        self(images, targets, stream(step)). Drawn ahead for steps up to `until` (exclusive) when a step's are not
        at hand; a batch of another size than the one drawn for (the last of an epoch, one with images skipped)
        draws again from its step."""
        shape = (images.shape[0], *images.shape[2:])
        if self._ahead is None or not self._ahead.holds(step, shape, stream):
            self._ahead = DrawsAhead(self.transforms, step, max(until, step + 1), shape, stream)
        for transform, (values, vectors) in zip(self.transforms, self._ahead.at(step)):
            images, targets = transform.apply(images, targets, values, vectors)
        return images, targets


def build_batch_regs(reg: DictConfig) -> BatchRegs | None:
    """The reg.batch transforms (None when there are none)."""
    transforms = [instantiate(node) for node in (reg.get("batch") or {}).values() if node is not None]
    return BatchRegs(transforms) if transforms else None
