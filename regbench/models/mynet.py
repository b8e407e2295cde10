"""Article 1's MyNet: four 3×3 convs, DropBlock after the third, and two fully connected layers."""
from __future__ import annotations

from typing import Callable

import paddle
import paddle.nn as nn

from regbench.errors import UserError
from regbench.reg.places import Places


class MyNet(nn.Layer):
    """conv 32·act·[conv] · conv 64/2·act·[conv] · conv 64/2·act·[conv]·[block] · conv 64/2·act·[conv]
    · fc 64·act·[fc] · fc. No residual branch."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        act: Callable[[int], nn.Layer],
        places: Places,
    ) -> None:
        super().__init__()
        if image_size < 7:
            raise UserError(
                f"model mynet needs image_size >= 7 (got {image_size}): "
                "set dataset.image_size=32 or pick another model"
            )
        side = (((image_size - 1) // 2 - 1) // 2 + 1) // 2  # conv4's map: 32→32→15→7→4
        self.features = nn.Sequential(
            nn.Conv2D(in_channels, 32, 3, stride=1, padding=1), act(32), places.conv(),
            nn.Conv2D(32, 64, 3, stride=2, padding=0), act(64), places.conv(),
            nn.Conv2D(64, 64, 3, stride=2, padding=0), act(64), places.conv(),
            places.block(drop_scale=1.0, site="stage"),
            nn.Conv2D(64, 64, 3, stride=2, padding=1), act(64), places.conv(),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * side * side, 64), act(64), places.fc(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.classifier(self.features(x))
