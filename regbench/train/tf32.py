"""TF32 in cuBLAS and cuDNN float32 kernels (Ampere and newer GPUs): the trainer's switch, and a block without it.

Paddle allows TF32 by default on GPU builds and reads the two switches at every kernel call. Paddle 2.6 CPU builds
have no switches (nothing to switch); Paddle 3 CPU builds have them and they change nothing there."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import paddle


def _core() -> object | None:
    core = paddle.base.core
    return core if hasattr(core, "set_cublas_switch") else None


def set_tf32(allowed: bool) -> bool:
    """Allow or forbid TF32 in cuBLAS matmuls and cuDNN convs; False when this Paddle build has no such switch."""
    core = _core()
    if core is None:
        return False
    core.set_cublas_switch(allowed)
    core.set_cudnn_switch(allowed)
    return True


@contextmanager
def tf32_off() -> Iterator[None]:
    """Full float32 in the block, the switches restored after it: references that TF32 rounding cannot fail."""
    core = _core()
    if core is None:
        yield
        return
    before = core.get_cublas_switch(), core.get_cudnn_switch()
    set_tf32(False)
    try:
        yield
    finally:
        core.set_cublas_switch(before[0])
        core.set_cudnn_switch(before[1])
