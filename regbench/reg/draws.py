"""The batch regularizers' random draws, kept apart from the ops that use them: each step's draws come from its own
numpy stream on the host, as ever; the int64 vectors among them (permutations, centres) reach the device for many
steps in one copy, so that no step waits on a host-to-device copy (on a GPU, paddle.to_tensor of host memory waits
for the work queued on the device)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import paddle

from regbench.reg.mixed_targets import Targets

Stream = Callable[[int], np.random.Generator]  # step -> that step's random stream


@dataclass(frozen=True)
class Draw:
    """One transform's draws for one batch: numbers the host decides with, and int64 vectors for the device."""
    values: tuple[Any, ...] = ()
    vectors: tuple[np.ndarray, ...] = ()


class DrawnTransform(ABC):
    """A batch transform whose randomness is all in draw(): apply() only reads the draws."""

    mixes: ClassVar[bool] = False  # whether apply() may return Mixed targets (the label-mixing ones: True)

    @abstractmethod
    def draw(self, rng: np.random.Generator, b: int, h: int, w: int) -> Draw:
        """The draws for a batch of b images of h×w."""

    @abstractmethod
    def apply(self, images: paddle.Tensor, targets: Targets, values: tuple[Any, ...],
              vectors: Sequence[paddle.Tensor]) -> tuple[paddle.Tensor, Targets]:
        """The batch transformed with draw()'s values and its vectors on the device."""

    def __call__(self, images: paddle.Tensor, targets: Targets,
                 rng: np.random.Generator) -> tuple[paddle.Tensor, Targets]:
        """One batch, its vectors copied to the device on their own."""
        b, _, h, w = images.shape
        draw = self.draw(rng, b, h, w)
        return self.apply(images, targets, draw.values, [paddle.to_tensor(v) for v in draw.vectors])


class DrawsAhead:
    """The draws of steps first..until-1 for batches of one shape (b, h, w), each step's from stream(step) in the
    transforms' order, with all their vectors in one device tensor."""

    def __init__(self, transforms: Sequence[DrawnTransform], first: int, until: int, shape: tuple[int, int, int],
                 stream: Stream) -> None:
        self.first, self.until, self.shape, self.stream = first, until, shape, stream
        # one stream per step, drawn from by the transforms in order
        draws = [[t.draw(rng, *shape) for t in transforms] for rng in map(stream, range(first, until))]
        vectors = [v for step in draws for d in step for v in d.vectors]
        self.buffer = paddle.to_tensor(np.concatenate(vectors).astype(np.int64)) if vectors else None
        # per step, per transform: its values and the (start, end) of each of its vectors in the buffer
        self.slices: list[list[tuple[tuple[Any, ...], list[tuple[int, int]]]]] = []
        start = 0
        for step in draws:
            self.slices.append([])
            for d in step:
                spans = []
                for v in d.vectors:
                    spans.append((start, start + len(v)))
                    start += len(v)
                self.slices[-1].append((d.values, spans))

    def holds(self, step: int, shape: tuple[int, int, int], stream: Stream) -> bool:
        """Whether step's draws are here, drawn for this shape from this stream."""
        return self.first <= step < self.until and shape == self.shape and stream == self.stream

    def at(self, step: int) -> list[tuple[tuple[Any, ...], list[paddle.Tensor]]]:
        """Each transform's values and device vectors at `step` (slices of the buffer: no copy from the host)."""
        return [(values, [self.buffer[start:end] for start, end in spans])
                for values, spans in self.slices[step - self.first]]
