"""LeNet-5 of article 2 (CIFAR-10, two max pools) and article 4 (MNIST, the second pool averages)."""
from __future__ import annotations

from typing import Callable

import paddle
import paddle.nn as nn

from regbench.errors import UserError
from regbench.reg.places import Places

_POOLS = {"max": nn.MaxPool2D, "avg": nn.AvgPool2D}


class LeNet5(nn.Layer):
    """conv5·act·[conv]·maxpool · conv5·act·[conv]·(max|avg)pool · conv5→120·act·[conv]
    · fc→84·act·[fc] · fc. No DropBlock place and no residual branch."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        pool2: str,
        act: Callable[[int], nn.Layer],
        places: Places,
    ) -> None:
        super().__init__()
        if image_size < 32:
            raise UserError(
                f"model lenet5 needs image_size >= 32 (got {image_size}): "
                "set dataset.image_size=32 or pick another model"
            )
        if pool2 not in _POOLS:
            raise UserError(f"model.pool2 must be one of {sorted(_POOLS)} (got {pool2!r})")
        side = ((image_size - 4) // 2 - 4) // 2 - 4  # conv3's map: 32→28→14→10→5→1
        self.features = nn.Sequential(
            nn.Conv2D(in_channels, 6, 5), act(6), places.conv(), nn.MaxPool2D(2, 2),
            nn.Conv2D(6, 16, 5), act(16), places.conv(), _POOLS[pool2](2, 2),
            nn.Conv2D(16, 120, 5), act(120), places.conv(),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(120 * side * side, 84), act(84), places.fc(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.classifier(self.features(x))
