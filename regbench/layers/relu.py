"""ReLU as an activation factory: models call act(channels) at every activation place."""
from __future__ import annotations

import paddle.nn as nn


class ReLU(nn.ReLU):
    """paddle.nn.ReLU that accepts (and ignores) the channel counts activation places pass: their own, and (MobileNetV2)
    their block input's, which a DY-ReLU with act.hyper_input=block pools."""

    def __init__(self, channels: int | None = None, block_channels: int | None = None) -> None:
        super().__init__()
