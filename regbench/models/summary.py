"""Parameter counts as paddle.summary reports them; FLOPs as paddle.flops counts them, and multiply-accumulates;
`regbench summary`'s line of them for a composed config."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import paddle
import paddle.nn as nn
from omegaconf import DictConfig

from regbench.reg import combination
from regbench.layers.dyrelu import DyReLUA, DyReLUB, DyReLUC
from regbench.models import build_model


def count_params(model: nn.Layer) -> tuple[int, int]:
    """(total, trainable) parameters; like paddle.summary, total includes BatchNorm's running mean and variance."""
    params = model.parameters()
    total = sum(math.prod(p.shape) for p in params)
    trainable = sum(math.prod(p.shape) for p in params if p.trainable and not p.stop_gradient)
    return total, trainable


# paddle.flops's per-layer rules (paddle/hapi/dynamic_flops.py), as functions of (layer, input, output) -> FLOPs.
# Its total crashes under numpy 2, so they are restated here. Like paddle.flops, they apply to layers of exactly
# these types (all leaves): other layers add nothing themselves, so a custom layer counts only its known sublayers.
def _conv(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    bias_ops = 1 if m.bias is not None else 0
    return int(math.prod(y.shape) * (x.shape[1] / m._groups * math.prod(m.weight.shape[2:]) + bias_ops))


def _batch_norm(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    return 2 * math.prod(x.shape)


def _linear(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    return m.weight.shape[0] * math.prod(y.shape)


def _input_size(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    return math.prod(x.shape)


def _output_size(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    return math.prod(y.shape)


def _adaptive_avg_pool(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    window = math.prod(i // o for i, o in zip(x.shape[2:], y.shape[2:]))
    return (window + 1) * math.prod(y.shape)


def _zero(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    return 0


_FLOP_RULES: dict[type, Callable[[nn.Layer, paddle.Tensor, paddle.Tensor], int]] = {
    **dict.fromkeys(
        [nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose], _conv
    ),
    **dict.fromkeys([nn.BatchNorm2D, nn.BatchNorm], _batch_norm),
    **dict.fromkeys([nn.ReLU, nn.ReLU6, nn.Dropout], _zero),
    nn.LeakyReLU: _input_size,
    nn.Linear: _linear,
    **dict.fromkeys([nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D], _output_size),
    **dict.fromkeys([nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D], _adaptive_avg_pool),
}


Rule = Callable[[nn.Layer, paddle.Tensor, paddle.Tensor], int]


def _conv_macs(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    return math.prod(y.shape) * x.shape[1] // m._groups * math.prod(m.weight.shape[2:])


def _dyrelu_macs(m: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> int:
    """Per element: one multiply-add per line (a_k·x + b_k); DY-ReLU-C adds its 1×1 attention conv and the 2K
    coefficient maps θ·π + init. The hyper-function's fcs count as Linear layers, its average pool not (a pool)."""
    per_element = m.k + (1 + 2 * m.k if isinstance(m, DyReLUC) else 0)
    return per_element * math.prod(x.shape)


def _mac_rule(layer: nn.Layer) -> Rule | None:
    if isinstance(layer, (nn.Conv1D, nn.Conv2D, nn.Conv3D)):
        return _conv_macs
    if isinstance(layer, nn.Linear):
        return _linear
    return _dyrelu_macs if isinstance(layer, (DyReLUA, DyReLUB, DyReLUC)) else None


def _count(model: nn.Layer, input_shape: Sequence[int], rule_of: Callable[[nn.Layer], Rule | None]) -> int:
    """The sum of rule(layer, input, output) over the layers `rule_of` gives a rule for, for one input in eval mode."""
    total = 0

    def hook(layer: nn.Layer, inputs: tuple, output: paddle.Tensor) -> None:
        nonlocal total
        total += rules[id(layer)](layer, inputs[0], output)

    rules = {id(m): rule for m in model.sublayers() if (rule := rule_of(m)) is not None}
    handles = [m.register_forward_post_hook(hook) for m in model.sublayers() if id(m) in rules]
    modes = [(m, m.training) for m in [model, *model.sublayers()]]
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.randn([1, *input_shape]))
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes:
            m.training = training
    return total


def count_flops(model: nn.Layer, input_shape: Sequence[int]) -> int:
    """FLOPs of one input of `input_shape` (without the batch axis, e.g. [1, 32, 32]) as paddle.flops counts them."""
    return _count(model, input_shape, lambda m: _FLOP_RULES.get(type(m)))


def count_macs(model: nn.Layer, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one input of `input_shape` (without the batch axis): convolutions and fully connected
    layers (weights only, as the papers' "MAdds"; BatchNorm folds into the conv at inference, pooling, additions
    and ReLU are not counted) and DY-ReLU's lines and hyper-function."""
    return _count(model, input_shape, _mac_rule)


def describe(cfg: DictConfig) -> dict[str, Any]:
    """The composed config's model (no data loaded): its choices, the input shape, its parameter counts, and its FLOPs
    and MACs per image at dataset.image_size."""
    choices = cfg.hydra.runtime.choices
    model = build_model(cfg.model, cfg.act, cfg.reg)
    input_shape = [1, cfg.dataset.channels, cfg.dataset.image_size, cfg.dataset.image_size]
    total, trainable = count_params(model)
    return dict(model=choices.model, act=choices.act, reg=combination.label(cfg.reg), dataset=choices.dataset,
                input_shape=input_shape, total_params=total, trainable_params=trainable,
                flops=count_flops(model, input_shape[1:]), macs=count_macs(model, input_shape[1:]))
