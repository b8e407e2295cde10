"""Where and in which precision a run computes: its device, its AMP mode and sums over data-parallel ranks.

Training and evaluation after training resolve `trainer.device` and `trainer.amp` alike, through these functions
(called by regbench/train/compute.py, which sets up the rest of how a run computes).
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


# below these compute capabilities paddle.amp.auto_cast trains in float32 with only a warning; fp16 needs more
# than Paddle's own is_float16_supported() asks (5.3), so regbench checks both
_AMP_MIN_CAPABILITY = {"fp16": (7, 0), "bf16": (8, 0)}


def amp_mode(choice: str, device: str) -> str:
    """The mixed precision to compute in: `choice` when this device can, else "off" with a warning."""
    if choice == "off":
        return "off"
    reason = amp_unavailable_on(choice, device)
    if reason is not None:
        log.warning("%s: computing in float32", reason)
        return "off"
    return choice


def amp_unavailable_on(choice: str, device: str) -> str | None:
    """Why `device` (of select_device) cannot train in `choice` (fp16 or bf16); None when it can."""
    if device != "gpu":
        return f"trainer.amp={choice} needs a GPU"
    supported = paddle.amp.is_float16_supported() if choice == "fp16" else paddle.amp.is_bfloat16_supported()
    return amp_unavailable(choice, supported, tuple(paddle.device.cuda.get_device_capability()))


def amp_unavailable(choice: str, paddle_supports: bool, capability: tuple[int, ...]) -> str | None:
    """Why a GPU of this compute capability cannot train in `choice` (fp16 or bf16); None when it can."""
    need = _AMP_MIN_CAPABILITY[choice]
    if paddle_supports and capability >= need:
        return None
    have = ".".join(map(str, capability))
    return f"trainer.amp={choice} needs a GPU of compute capability {need[0]}.{need[1]} or newer (this one: {have})"


def sum_over_ranks(values: list[float]) -> list[float]:
    """Sums over the data-parallel ranks (the values themselves in a single process)."""
    if paddle.distributed.get_world_size() == 1:
        return values
    total = paddle.to_tensor(values, dtype="float64")
    paddle.distributed.all_reduce(total)
    return total.tolist()


def broadcast_unsynced_state(model: paddle.nn.Layer) -> None:
    """Give every data-parallel rank rank 0's values of the model's tensors that gradients do not keep equal: its
    buffers and the parameters that take no gradient, among them each batch norm's running mean and variance
    (Paddle keeps those as parameters with stop_gradient set). A no-op in a single process."""
    if paddle.distributed.get_world_size() == 1:
        return
    for tensor in [*(p for p in model.parameters() if p.stop_gradient), *model.buffers()]:
        paddle.distributed.broadcast(tensor, src=0)
