"""MobileNetV2 (Sandler et al., CVPR 2018) as torchvision builds it, the Dynamic ReLU paper's ImageNet network."""
from __future__ import annotations

from typing import Callable

import paddle
import paddle.nn as nn

from regbench.errors import UserError
from regbench.reg.places import Places

# expansion t, output channels c, blocks n, stride s of the first block: the paper's Table 2
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _divisible(channels: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of 8, never more than 10% down (the reference code's rule for width < 1)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Layer]:
    return [nn.Conv2D(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias_attr=False),
            nn.BatchNorm2D(cout)]


def _activate(act: nn.Layer, x: paddle.Tensor, block_input: paddle.Tensor) -> paddle.Tensor:
    """act(x), given the block's input too where act is a DY-ReLU whose hyper-function pools it (hyper_input=block)."""
    return act(x, block_input) if getattr(act, "hyper_input", "self") == "block" else act(x)


class ConvBNAct(nn.Layer):
    """conv·BN·act·[conv]. act(cout, block_channels) is activated with `block_input` beside it, the conv's own input x
    unless given: what a DY-ReLU with act.hyper_input=block pools (block_channels wide, by default cin)."""

    def __init__(self, cin: int, cout: int, kernel: int, act: Callable[[int, int], nn.Layer], places: Places,
                 stride: int = 1, groups: int = 1, block_channels: int | None = None) -> None:
        super().__init__()
        self.conv, self.bn = _conv_bn(cin, cout, kernel, stride, groups)
        self.act = act(cout, cin if block_channels is None else block_channels)
        self.reg = places.conv()

    def forward(self, x: paddle.Tensor, block_input: paddle.Tensor | None = None) -> paddle.Tensor:
        return self.reg(_activate(self.act, self.bn(self.conv(x)), x if block_input is None else block_input))


class InvertedResidual(nn.Layer):
    """x → [expand: conv1×1 ×t·BN·act·[conv]] → depthwise: conv3×3/stride·BN·act·[conv] → project: conv1×1·BN
    (linear)·[residual] → + x when the stride is 1 and the channels stay (the skip); the residual place at `depth`
    = l/17 of the rate (block l of the 17).

    Both acts are act(t·cin, cin) and are given x, the block's thin input: a DY-ReLU with act.hyper_input=block pools
    x for its coefficients and applies them to the expanded tensor, as the Dynamic ReLU authors' DYReLU([x_in, x_out])
    (microsoft/DynamicHead, dyhead/dyrelu.py)."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, act: Callable[[int, int], nn.Layer],
                 places: Places, depth: float) -> None:
        super().__init__()
        hidden = round(cin * expansion)
        self.expand = ConvBNAct(cin, hidden, 1, act, places) if expansion != 1 else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, 3, act, places, stride, groups=hidden, block_channels=cin)
        self.project = nn.Sequential(*_conv_bn(hidden, cout, 1))
        self.skip = stride == 1 and cin == cout
        self.residual = places.residual(drop_scale=depth) if self.skip else nn.Identity()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.project(self.depthwise(self.expand(x), block_input=x))
        return x + self.residual(y) if self.skip else y


class MobileNetV2(nn.Layer):
    """conv3×3/2 32·BN·act·[conv] · 17 inverted residuals (SETTINGS) · conv1×1 1280·BN·act·[conv] · avg pool ·
    dropout · fc (width 1.0: 3,504,872 trainable parameters at 1,000 classes, 0.30 GMACs per 224-px image).

    act(channels, block_channels) is called at each of torchvision's 35 ReLU6s: the stem conv's (32 channels), each
    block's expansion 1×1 conv's (16 blocks, 6× the block's input channels) and depthwise 3×3 conv's (17 blocks), and
    the last 1×1 conv's (1280). act=dyrelu_a|b|c replaces every one of them by a DY-ReLU sized to its channels (its
    hyper-function's reduction is act.reduction), as the Dynamic ReLU paper replaces the ReLUs of its networks; the
    projection 1×1 conv of a block stays linear, as in MobileNetV2. Its hyper-function pools (act.hyper_input) the
    tensor it activates (self), or (block) the input of its unit, block_channels wide: an inverted residual's thin
    input for both of the block's acts, the image (3 channels) for the stem's, the last block's output (320) for the
    last conv's. `relu6` turns a plain ReLU from the act factory into ReLU6 (torchvision's); other activations are
    used as given. The 10 blocks with a skip have a residual place on their branch at drop_scale l/17, l the block's
    depth among the 17. MobileNetV2 has no hidden fully connected layer (`dropout` is the rate before the classifier)
    and no DropBlock place: no paper places DropBlock in it, so a reg.block that fills places is refused.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: float,
        relu6: bool,
        dropout: float,
        act: Callable[..., nn.Layer],
        places: Places,
    ) -> None:
        super().__init__()
        if any(not isinstance(places.block(drop_scale=1.0, site=site), nn.Identity) for site in ("stage", "block")):
            raise UserError("model mobilenetv2 has no DropBlock places (no paper places DropBlock in MobileNetV2): "
                            "leave out reg=dropblock or use reg=droppath")

        def activation(channels: int, block_channels: int) -> nn.Layer:
            layer = act(channels, block_channels=block_channels)
            return nn.ReLU6() if relu6 and isinstance(layer, nn.ReLU) else layer

        cin = _divisible(32 * width)
        last = _divisible(1280 * max(1.0, width))
        layers = [ConvBNAct(in_channels, cin, 3, activation, places, stride=2)]
        total = sum(n for _, _, n, _ in SETTINGS)
        depth = 0
        for t, c, n, s in SETTINGS:
            cout = _divisible(c * width)
            for i in range(n):
                depth += 1
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, activation, places, depth / total))
                cin = cout
        layers.append(ConvBNAct(cin, last, 1, activation, places))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(last, num_classes))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.classifier(self.features(x))
