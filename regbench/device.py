"""Where and in which precision a run computes: its device, its AMP mode and sums over data-parallel ranks.

Training and evaluation after training resolve `trainer.device` and `trainer.amp` alike, through these functions.
"""
from __future__ import annotations

import logging

import paddle

from regbench.errors import UserError

log = logging.getLogger("regbench")

AMP_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


def select_device(choice: str) -> str:
    """'gpu' when asked for (or auto) and Paddle has a CUDA device, else 'cpu'; made Paddle's current device."""
    cuda = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if choice == "gpu" and not cuda:
        raise UserError("trainer.device=gpu but this Paddle has no CUDA device: install paddlepaddle-gpu "
                        "(see README) or use trainer.device=auto")
    device = "gpu" if cuda and choice != "cpu" else "cpu"
    paddle.set_device(device)
    return device


def amp_mode(choice: str, device: str) -> str:
    """The mixed precision to compute in: `choice` when this device can, else "off" with a warning."""
    if choice == "off":
        return "off"
    if device != "gpu":
        log.warning("trainer.amp=%s needs a GPU: computing in float32", choice)
        return "off"
    if choice == "bf16" and not paddle.amp.is_bfloat16_supported():
        log.warning("trainer.amp=bf16 needs a GPU of compute capability 8.0 or newer: computing in float32")
        return "off"
    return choice


def sum_over_ranks(values: list[float]) -> list[float]:
    """Sums over the data-parallel ranks (the values themselves in a single process)."""
    if paddle.distributed.get_world_size() == 1:
        return values
    total = paddle.to_tensor(values, dtype="float64")
    paddle.distributed.all_reduce(total)
    return total.tolist()
