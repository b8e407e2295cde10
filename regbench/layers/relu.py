"""ReLU as an activation factory: models call act(channels) at every activation place."""
from __future__ import annotations

import paddle.nn as nn


class ReLU(nn.ReLU):
    """paddle.nn.ReLU that accepts (and ignores) the channel count every activation place passes."""

    def __init__(self, channels: int | None = None) -> None:
        super().__init__()
