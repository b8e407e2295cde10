"""ResNet18 of article 3 (CIFAR stem) and article 4 (ImageNet stem, `use_residual` switch)."""
from __future__ import annotations

from typing import Callable

import paddle
import paddle.nn as nn

from regbench.errors import UserError

BLOCKS = 8  # BasicBlocks: four stages of two


class BasicBlock(nn.Layer):
    """conv3×3·BN·act·[conv] · conv3×3·BN·[residual], + shortcut (1×1 conv·BN if the shape changes), then act·[conv].

    `residual` (e.g. DropPath) acts on the branch before the sum; without the sum (use_residual=False) there is no
    residual branch and it is not used."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        use_residual: bool,
        act: Callable[[int], nn.Layer],
        conv_reg: Callable[[], nn.Layer],
        residual: Callable[[], nn.Layer],
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2D(in_channels, out_channels, 3, stride=stride, padding=1, bias_attr=False),
            nn.BatchNorm2D(out_channels), act(out_channels), conv_reg(),
            nn.Conv2D(out_channels, out_channels, 3, stride=1, padding=1, bias_attr=False),
            nn.BatchNorm2D(out_channels),
        )
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2D(in_channels, out_channels, 1, stride=stride, bias_attr=False),
                nn.BatchNorm2D(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        # Article 4's use_residual=False keeps the shortcut layers (same parameter count) but never adds them.
        self.use_residual = use_residual
        self.residual = residual() if use_residual else nn.Identity()
        self.after_sum = nn.Sequential(act(out_channels), conv_reg())

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.body(x)
        if self.use_residual:
            y = self.residual(y) + self.shortcut(x)
        return self.after_sum(y)


def _stem(
    kind: str, in_channels: int, act: Callable[[int], nn.Layer], conv_reg: Callable[[], nn.Layer]
) -> nn.Sequential:
    if kind == "cifar":
        return nn.Sequential(
            nn.Conv2D(in_channels, 64, 3, stride=1, padding=1, bias_attr=False),
            nn.BatchNorm2D(64), act(64), conv_reg(),
        )
    if kind == "imagenet":
        return nn.Sequential(
            nn.Conv2D(in_channels, 64, 7, stride=2, padding=3),
            nn.BatchNorm2D(64), act(64), conv_reg(),
            nn.MaxPool2D(3, stride=2, padding=1),
        )
    raise UserError(f"model.stem must be cifar or imagenet (got {kind!r})")


class ResNet18(nn.Layer):
    """stem · stage 64 · stage 128/2 · stage 256/2·[block ¼] · stage 512/2·[block] · avg pool · fc.

    Block l of the 8 gets residual_reg(drop_scale=l/8) on its branch (stochastic depth's linear rule).
    ResNet18 has no hidden fully connected layer: `fc_reg` is accepted so that every model takes the same factories.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stem: str,
        use_residual: bool,
        act: Callable[[int], nn.Layer],
        conv_reg: Callable[[], nn.Layer],
        fc_reg: Callable[[], nn.Layer],
        block_reg: Callable[..., nn.Layer],
        residual_reg: Callable[..., nn.Layer],
    ) -> None:
        super().__init__()
        depth = iter(range(1, BLOCKS + 1))

        def block(cin: int, cout: int, stride: int) -> BasicBlock:
            drop_scale = next(depth) / BLOCKS
            return BasicBlock(cin, cout, stride, use_residual, act, conv_reg,
                              residual=lambda: residual_reg(drop_scale=drop_scale))

        def stage(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(block(cin, cout, stride), block(cout, cout, 1))

        # DropBlock paper's official code: stage 3 gets a quarter of stage 4's drop rate.
        self.net = nn.Sequential(
            _stem(stem, in_channels, act, conv_reg),
            stage(64, 64, 1),
            stage(64, 128, 2),
            stage(128, 256, 2), block_reg(drop_scale=0.25),
            stage(256, 512, 2), block_reg(drop_scale=1.0),
            nn.AdaptiveAvgPool2D(1), nn.Flatten(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)
