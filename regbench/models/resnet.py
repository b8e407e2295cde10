"""ResNet18 of article 3 (CIFAR stem) and article 4 (ImageNet stem, `use_residual` switch)."""
from __future__ import annotations

from typing import Callable

import paddle
import paddle.nn as nn

from regbench.errors import UserError

BLOCKS = 8  # BasicBlocks: four stages of two


class BasicBlock(nn.Layer):
    """conv3×3·BN·act·[conv]·[drop] · conv3×3·BN·[drop]·[residual], + shortcut (1×1 conv·BN if the shape
    changes)·[drop], then act·[conv].

    `drop` makes the block's DropBlock places (Identity where there are none): where the official TF ResNet applies
    DropBlock inside its bottleneck blocks — after each conv·BN(·ReLU) of the body and on the shortcut. `residual`
    (e.g. DropPath) acts on the branch before the sum; without the sum (use_residual=False) there is no residual
    branch and it is not used."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        use_residual: bool,
        act: Callable[[int], nn.Layer],
        conv_reg: Callable[[], nn.Layer],
        drop: Callable[[], nn.Layer],
        residual: Callable[[], nn.Layer],
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2D(in_channels, out_channels, 3, stride=stride, padding=1, bias_attr=False),
            nn.BatchNorm2D(out_channels), act(out_channels), nn.Sequential(conv_reg(), drop()),
            nn.Conv2D(out_channels, out_channels, 3, stride=1, padding=1, bias_attr=False),
            nn.BatchNorm2D(out_channels), drop(),
        )
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2D(in_channels, out_channels, 1, stride=stride, bias_attr=False),
                nn.BatchNorm2D(out_channels), drop(),
            )
        else:
            self.shortcut = drop()
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

    DropBlock places (`block_reg(drop_scale, site)`): "stage" after stages 3 and 4, "block" inside every block of
    stages 3 and 4 (see BasicBlock); stage 3 gets a quarter of stage 4's drop rate at both, as the DropBlock paper's
    official code gives group 3. Block l of the 8 gets residual_reg(drop_scale=l/8) on its branch (stochastic
    depth's linear rule). ResNet18 has no hidden fully connected layer: `fc_reg` is accepted so that every model
    takes the same factories.
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

        def block(cin: int, cout: int, stride: int, drop: Callable[[], nn.Layer]) -> BasicBlock:
            drop_scale = next(depth) / BLOCKS
            return BasicBlock(cin, cout, stride, use_residual, act, conv_reg, drop,
                              residual=lambda: residual_reg(drop_scale=drop_scale))

        def stage(cin: int, cout: int, stride: int, drop_scale: float | None = None) -> nn.Sequential:
            def drop() -> nn.Layer:
                return nn.Identity() if drop_scale is None else block_reg(drop_scale=drop_scale, site="block")

            return nn.Sequential(block(cin, cout, stride, drop), block(cout, cout, 1, drop))

        self.net = nn.Sequential(
            _stem(stem, in_channels, act, conv_reg),
            stage(64, 64, 1),
            stage(64, 128, 2),
            stage(128, 256, 2, drop_scale=0.25), block_reg(drop_scale=0.25, site="stage"),
            stage(256, 512, 2, drop_scale=1.0), block_reg(drop_scale=1.0, site="stage"),
            nn.AdaptiveAvgPool2D(1), nn.Flatten(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)
