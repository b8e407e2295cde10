"""The ResNets: ResNet18 of article 3 (CIFAR stem) and article 4 (ImageNet stem with bias, `use_residual` switch),
and the ImageNet ResNet-50 of the DropBlock paper (torchvision's v1.5 layout: the stride on the 3×3 conv)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import paddle
import paddle.nn as nn

from regbench.errors import UserError
from regbench.reg.places import Places


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Layer]:
    return [nn.Conv2D(cin, cout, kernel, stride=stride, padding=kernel // 2, bias_attr=False), nn.BatchNorm2D(cout)]


@dataclass(frozen=True)
class BlockPlaces:
    """One residual block's places: conv() after each activation, block() its DropBlock places (none outside stages 3
    and 4, where `block_scale` is None), residual() on its branch at `depth` = l/L of the rate (block l of L)."""
    places: Places
    block_scale: float | None
    depth: float

    def conv(self) -> nn.Layer:
        return self.places.conv()

    def block(self) -> nn.Layer:
        if self.block_scale is None:
            return nn.Identity()
        return self.places.block(drop_scale=self.block_scale, site="block")

    def residual(self) -> nn.Layer:
        return self.places.residual(drop_scale=self.depth)


class _ResidualBlock(nn.Layer):
    """body, + shortcut (1×1 conv·BN if the shape changes)·[block], then act·[conv]. [residual] (e.g. DropPath) acts
    on the branch before the sum; without the sum (use_residual=False) there is no residual branch."""

    def __init__(self, body: list[nn.Layer], in_channels: int, out_channels: int, stride: int, use_residual: bool,
                 act: Callable[[int], nn.Layer], places: BlockPlaces) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride), places.block())
        else:
            self.shortcut = places.block()
        # Article 4's use_residual=False keeps the shortcut layers (same parameter count) but never adds them.
        self.use_residual, self.out_channels = use_residual, out_channels
        self.residual = places.residual() if use_residual else nn.Identity()
        self.after_sum = nn.Sequential(act(out_channels), places.conv())

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.body(x)
        if self.use_residual:
            y = self.residual(y) + self.shortcut(x)
        return self.after_sum(y)


class BasicBlock(_ResidualBlock):
    """conv3×3·BN·act·[conv]·[block] · conv3×3·BN·[block]·[residual], + shortcut·[block], then act·[conv].

    [block]: the block's DropBlock places, where the official TF ResNet applies DropBlock inside its blocks — after
    each conv·BN(·act) of the body and on the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_residual: bool,
                 act: Callable[[int], nn.Layer], places: BlockPlaces) -> None:
        body = [*_conv_bn(in_channels, out_channels, 3, stride), act(out_channels),
                nn.Sequential(places.conv(), places.block()),
                *_conv_bn(out_channels, out_channels, 3), places.block()]
        super().__init__(body, in_channels, out_channels, stride, use_residual, act, places)


class Bottleneck(_ResidualBlock):
    """conv1×1·BN·act·[conv]·[block] · conv3×3/stride·BN·act·[conv]·[block] · conv1×1 ×4·BN·[block]·[residual],
    + shortcut·[block], then act·[conv]: the official TF ResNet's bottleneck block with its DropBlock places."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, act: Callable[[int], nn.Layer],
                 places: BlockPlaces) -> None:
        out_channels = width * self.expansion
        body = [*_conv_bn(in_channels, width, 1), act(width), places.conv(), places.block(),
                *_conv_bn(width, width, 3, stride), act(width), places.conv(), places.block(),
                *_conv_bn(width, out_channels, 1), places.block()]
        super().__init__(body, in_channels, out_channels, stride, True, act, places)


def _stem(kind: str, in_channels: int, bias: bool, act: Callable[[int], nn.Layer],
          places: Places) -> nn.Sequential:
    """cifar: conv3×3·BN·act·[conv]; imagenet: conv7×7/2·BN·act·[conv]·max pool 3×3/2 (a bias on the conv: `bias`)."""
    bias_attr = None if bias else False
    if kind == "cifar":
        return nn.Sequential(nn.Conv2D(in_channels, 64, 3, stride=1, padding=1, bias_attr=bias_attr),
                             nn.BatchNorm2D(64), act(64), places.conv())
    if kind == "imagenet":
        return nn.Sequential(nn.Conv2D(in_channels, 64, 7, stride=2, padding=3, bias_attr=bias_attr),
                             nn.BatchNorm2D(64), act(64), places.conv(), nn.MaxPool2D(3, stride=2, padding=1))
    raise UserError(f"model.stem must be cifar or imagenet (got {kind!r})")


# DropBlock's share of the drop rate per stage (None: no DropBlock places): groups 3 and 4 as the DropBlock paper,
# group 3 at a quarter of group 4's rate as its official code
_GROUP_DROP = (None, None, 0.25, 1.0)
_WIDTHS = (64, 128, 256, 512)


def _stages(counts: tuple[int, ...], make_block: Callable[[int, int, int, BlockPlaces], _ResidualBlock],
            places: Places) -> list[nn.Layer]:
    """The four stages of `counts` blocks (the first of stages 2-4 with stride 2), each followed by its "stage"
    DropBlock place where it has one; block l of L has its residual place at l/L of the rate (stochastic depth's
    linear rule). make_block(in_channels, width, stride, places) builds one block."""
    total, depth, cin = sum(counts), 0, 64
    layers: list[nn.Layer] = []
    for index, (count, width, drop_scale) in enumerate(zip(counts, _WIDTHS, _GROUP_DROP)):
        stage = []
        for i in range(count):
            depth += 1
            stride = 2 if index > 0 and i == 0 else 1
            stage.append(make_block(cin, width, stride, BlockPlaces(places, drop_scale, depth / total)))
            cin = stage[-1].out_channels
        layers.append(nn.Sequential(*stage))
        if drop_scale is not None:
            layers.append(places.block(drop_scale=drop_scale, site="stage"))
    return layers


class ResNet18(nn.Layer):
    """stem · stage 64 · stage 128/2 · stage 256/2·[block ¼] · stage 512/2·[block] · avg pool · fc.

    DropBlock places (`places.block(drop_scale, site)`): "stage" after stages 3 and 4, "block" inside every block of
    stages 3 and 4 (see BasicBlock); stage 3 gets a quarter of stage 4's drop rate at both, as the DropBlock paper's
    official code gives group 3. Block l of the 8 has its residual place at drop_scale l/8 (stochastic depth's
    linear rule). No hidden fully connected layer.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stem: str,
        stem_bias: bool,
        use_residual: bool,
        act: Callable[[int], nn.Layer],
        places: Places,
    ) -> None:
        super().__init__()

        def block(cin: int, width: int, stride: int, at: BlockPlaces) -> BasicBlock:
            return BasicBlock(cin, width, stride, use_residual, act, at)

        layers = [_stem(stem, in_channels, stem_bias, act, places), *_stages((2, 2, 2, 2), block, places)]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(512, num_classes))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)


class ResNet50(nn.Layer):
    """stem · 3 bottlenecks 256 · 4 × 512/2 · 6 × 1024/2·[block ¼] · 3 × 2048/2·[block] · avg pool · fc
    (25,557,032 trainable parameters at 1,000 classes with the ImageNet stem, as torchvision and Paddle).

    The DropBlock paper's placement: "stage" after groups 3 and 4, "block" inside every bottleneck of groups 3 and 4
    (see Bottleneck), group 3 at a quarter of group 4's drop rate. Block l of the 16 has its residual place at
    drop_scale l/16. No hidden fully connected layer.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stem: str,
        stem_bias: bool,
        act: Callable[[int], nn.Layer],
        places: Places,
    ) -> None:
        super().__init__()

        def block(cin: int, width: int, stride: int, at: BlockPlaces) -> Bottleneck:
            return Bottleneck(cin, width, stride, act, at)

        layers = [_stem(stem, in_channels, stem_bias, act, places), *_stages((3, 4, 6, 3), block, places)]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(2048, num_classes))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)
