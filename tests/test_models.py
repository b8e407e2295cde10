"""The articles' models, built from the real conf/ tree: shapes, published counts, and where factories are called."""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from regbench.errors import UserError
from regbench.models import build_model
from regbench.models.lenet import LeNet5
from regbench.models.mynet import MyNet
from regbench.models.summary import count_flops, count_params
from regbench.reg.places import Places

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class Published(NamedTuple):
    dataset: str  # the dataset config of the model's article
    params: int  # paddle.summary's count: weights plus BatchNorm running mean and variance
    flops: int | None  # paddle.flops for one input, where the article gives it


PUBLISHED = {
    "lenet5": Published("cifar10", 62_006, None),
    "lenet5_nndl": Published("mnist_nndl", 61_706, 423_344),
    "mynet": Published("cifar10", 159_498, None),
    "resnet18": Published("cifar10", 11_183_562, None),
    "resnet18_nndl": Published("mnist_nndl", 11_185_034, 35_529_728),
}


def relu(channels: int) -> nn.Layer:
    """Activation factory with conf/act's signature (regbench.layers' ReLU is tested with the layers)."""
    return nn.ReLU()


def compose_config(model: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[f"model={model}", f"dataset={PUBLISHED[model].dataset}", *overrides])


def input_shape(cfg: DictConfig) -> list[int]:
    return [cfg.dataset.channels, cfg.dataset.image_size, cfg.dataset.image_size]


def build(model: str, *overrides: str) -> tuple[nn.Layer, list[int]]:
    cfg = compose_config(model, *overrides)
    act = OmegaConf.create({"_target_": f"{__name__}.relu", "_partial_": True})
    return build_model(cfg.model, act, cfg.reg), input_shape(cfg)


@pytest.mark.parametrize("model", PUBLISHED)
def test_output_shape_and_published_counts(model: str) -> None:
    net, shape = build(model)
    net.eval()
    assert net(paddle.randn([2, *shape])).shape == [2, 10]
    assert count_params(net)[0] == PUBLISHED[model].params
    if PUBLISHED[model].flops is not None:
        assert count_flops(net, shape) == PUBLISHED[model].flops


@pytest.mark.parametrize("model", PUBLISHED)
def test_count_params_matches_paddle_summary(model: str) -> None:
    net, shape = build(model)
    info = paddle.summary(net, (1, *shape))
    assert count_params(net) == (int(info["total_params"]), int(info["trainable_params"]))


def test_resnet_trainable_params_leave_out_batchnorm_statistics() -> None:
    net, _ = build("resnet18")
    bn_channels = sum(m.weight.shape[0] for m in net.sublayers() if isinstance(m, nn.BatchNorm2D))
    total, trainable = count_params(net)
    assert total - trainable == 2 * bn_channels == 9_600


class Probe(nn.Layer):
    """Identity that logs its place's kind and the channel count of the tensor passing through it."""

    def __init__(self, log: list[tuple[str, int]], kind: str) -> None:
        super().__init__()
        self.log, self.kind = log, kind

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        self.log.append((self.kind, x.shape[1]))
        return x


def _resnet_places(residual: bool = True) -> list[tuple[str, int]]:
    places = [("act", 64), ("conv", 64)]  # stem
    for stage, channels in enumerate((64, 128, 256, 512)):
        scale = {256: 0.25, 512: 1.0}.get(channels)
        # stages 3 and 4: DropBlock places inside each block (the official TF ResNet's: after the first conv·BN·act,
        # after the second conv·BN, on the shortcut, which runs only with the sum), then after the stage
        inside = [(f"block {scale} block", channels)] if scale else []
        for block in (2 * stage + 1, 2 * stage + 2):  # after the first BN, on the branch, after the sum
            branch = [(f"residual {block / 8}", channels), *inside] if residual else []
            places += [("act", channels), ("conv", channels), *inside * 2, *branch, ("act", channels),
                       ("conv", channels)]
        places += [(f"block {scale} stage", channels)] if scale else []
    return places


PLACES = {
    "lenet5": [("act", 6), ("conv", 6), ("act", 16), ("conv", 16), ("act", 120), ("conv", 120),
               ("act", 84), ("fc", 84)],
    "mynet": [("act", 32), ("conv", 32), ("act", 64), ("conv", 64), ("act", 64), ("conv", 64), ("block 1.0 stage", 64),
              ("act", 64), ("conv", 64), ("act", 64), ("fc", 64)],
    "resnet18": _resnet_places(),
    "resnet18_nndl": _resnet_places(),
    "resnet18_nndl model.use_residual=false": _resnet_places(residual=False),  # no sum, no residual branch
}


@pytest.mark.parametrize("model", PLACES)
def test_factories_are_called_at_the_articles_places(model: str) -> None:
    cfg = compose_config(*model.split())
    log: list[tuple[str, int]] = []
    act_channels: list[int] = []

    def act(channels: int) -> nn.Layer:
        act_channels.append(channels)
        return Probe(log, "act")

    net = instantiate(
        cfg.model,
        act=act,
        places=Places(
            conv=lambda: Probe(log, "conv"),
            fc=lambda: Probe(log, "fc"),
            block=lambda drop_scale, site: Probe(log, f"block {drop_scale} {site}"),
            residual=lambda drop_scale: Probe(log, f"residual {drop_scale}"),
        ),
    )
    net.eval()
    net(paddle.randn([1, *input_shape(cfg)]))
    assert log == PLACES[model]
    assert act_channels == [channels for kind, channels in log if kind == "act"]


def test_use_residual_false_drops_the_shortcut_sum_but_keeps_the_parameters() -> None:
    with_sum, shape = build("resnet18_nndl")
    without_sum, _ = build("resnet18_nndl", "model.use_residual=false")
    without_sum.set_state_dict(with_sum.state_dict())
    with_sum.eval()
    without_sum.eval()
    x = paddle.randn([2, *shape])
    before = without_sum(x).numpy()
    assert not np.allclose(with_sum(x).numpy(), before, atol=1e-4)
    assert count_params(with_sum) == count_params(without_sum)
    for name, param in without_sum.named_parameters():
        if ".shortcut." in name:
            param.set_value(paddle.randn(param.shape))
    np.testing.assert_allclose(without_sum(x).numpy(), before, rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "smallest", "too_small"),
    [
        (lambda size: LeNet5(1, 10, size, "avg", relu, Places()), 32, 28),
        (lambda size: MyNet(3, 10, size, relu, Places()), 7, 6),
    ],
    ids=["lenet5", "mynet"],
)
def test_too_small_image_is_a_user_error(make, smallest: int, too_small: int) -> None:
    with pytest.raises(UserError, match=re.escape(f"needs image_size >= {smallest} (got {too_small})")):
        make(too_small)
    make(smallest)


@pytest.mark.parametrize(("model", "size"), [("lenet5", 40), ("mynet", 28)])
def test_flatten_size_follows_image_size(model: str, size: int) -> None:
    net, shape = build(model, f"dataset.image_size={size}")
    assert shape[1] == size
    assert net(paddle.randn([2, *shape])).shape == [2, 10]


class Gate(nn.Layer):
    """A custom layer with children: paddle.flops counts its children, not its own ops."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.norm = nn.BatchNorm1D(4)  # not in paddle.flops's table: zero

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * F.sigmoid(self.norm(self.fc(x)))


class Scale(nn.Layer):
    """A custom leaf layer: unknown to paddle.flops, so zero FLOPs (but its parameter counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = self.create_parameter([4])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * self.weight


def test_count_flops_follows_paddle_flops_rules_for_custom_and_unknown_layers() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), Gate(), Scale(), nn.LeakyReLU())
    net.train()
    # Linear 3·4 + Gate's Linear 4·4 + LeakyReLU 4 (one per input element); Dropout, BatchNorm1D, Scale: 0
    assert count_flops(net, [3]) == 12 + 16 + 4
    assert net.training and all(m.training for m in net.sublayers())
    linears, batch_norm, scale = (3 * 4 + 4) + (4 * 4 + 4), 4 * 4, 4  # batch_norm: weight, bias, mean, variance
    assert count_params(net) == (linears + batch_norm + scale, linears + batch_norm // 2 + scale)
