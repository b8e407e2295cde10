"""Where and how a run computes: its device, its mixed precision, its CPU threads and the speed switches of
`trainer`, set up one way for training and for scoring a checkpoint afterwards (`regbench eval`)."""
from __future__ import annotations

from dataclasses import dataclass

import paddle
from omegaconf import DictConfig

from regbench.device import amp_mode, select_device
from regbench.train import speed, threads


@dataclass(frozen=True)
class Compute:
    device: str  # cpu | gpu, made Paddle's current device
    amp: str  # off | fp16 | bf16 ("off" where the device cannot)
    threads: int  # MKL/OpenMP threads of the CPU kernels
    fast_conv_bias: bool  # trainer.fast_conv_bias, on the CPU

    def adapt(self, model: paddle.nn.Layer) -> None:
        """The model's layers switched to the faster kernels these settings choose (in place)."""
        if self.fast_conv_bias:
            speed.fast_conv_bias(model)


def set_up(trainer: DictConfig) -> Compute:
    """trainer.device made Paddle's device, and the process-wide settings (threads, cuDNN, TF32) applied."""
    device = select_device(trainer.device)
    compute = Compute(device=device, amp=amp_mode(trainer.amp, device), threads=threads.resolve(trainer),
                      fast_conv_bias=trainer.fast_conv_bias and device == "cpu")
    speed.configure(device, threads=compute.threads, trainer=trainer)
    return compute
