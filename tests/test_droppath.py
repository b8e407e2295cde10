"""DropPath (stochastic depth): per-sample branch drops at the paper's linear rates per depth, scaling, placement."""
from __future__ import annotations

import logging
import math

import numpy as np
import paddle
import pytest

from regbench.config import compose
from regbench.errors import UserError
from regbench.reg.droppath import DropPath
from regbench.models import build_model


def droppaths(model: str, *overrides: str) -> tuple[paddle.nn.Layer, list[DropPath]]:
    cfg = compose([f"model={model}", "reg=droppath", "dataset=cifar10", *overrides])
    net = build_model(cfg.model, cfg.act, cfg.reg)
    return net, [m for m in net.sublayers() if isinstance(m, DropPath)]


def test_resnet18_drop_rate_grows_linearly_with_depth_to_rate_at_the_last_block() -> None:
    """Huang et al.: survival p_l = 1 − (l/L)(1 − p_L); measured on many samples per block."""
    paddle.seed(0)
    rate, samples = 0.5, 40000
    _, layers = droppaths("resnet18", f"reg.droppath.rate={rate}")
    assert len(layers) == 8
    for depth, layer in enumerate(layers, start=1):
        expected = rate * depth / 8
        out = layer(paddle.ones([samples, 2, 3, 3])).numpy()
        per_sample = out.reshape(samples, -1)
        dropped = (per_sample == 0).all(axis=1)
        assert ((per_sample == 0).any(axis=1) == dropped).all()  # whole samples, never parts
        assert abs(dropped.mean() - expected) < 4 * math.sqrt(expected * (1 - expected) / samples), (depth, dropped.mean())
        np.testing.assert_allclose(per_sample[~dropped], 1.0 / (1.0 - expected), rtol=1e-6)


def test_identity_in_eval_and_the_model_equals_one_without_droppath() -> None:
    paddle.seed(0)
    with_dp, _ = droppaths("resnet18")
    cfg = compose(["model=resnet18", "reg=none", "dataset=cifar10"])
    without = build_model(cfg.model, cfg.act, cfg.reg)
    without.set_state_dict(with_dp.state_dict())
    x = paddle.randn([2, 3, 32, 32])
    with_dp.eval(), without.eval()
    np.testing.assert_allclose(with_dp(x).numpy(), without(x).numpy(), rtol=1e-5, atol=1e-5)
    with_dp.train(), without.train()
    paddle.seed(3)
    assert not np.allclose(with_dp(x).numpy(), without(x).numpy(), atol=1e-4)


def test_droppath_sits_on_the_branch_before_the_sum() -> None:
    """At rate → 1 for the last block its branch is gone: the block's output is act(shortcut(x))."""
    net, layers = droppaths("resnet18")
    last = net.net[5][1]  # stage 4, block 2: identity shortcut
    last.residual.rate, last.residual.drop_scale = 1.0 - 1e-9, 1.0
    last.train()
    x = paddle.rand([3, 512, 4, 4])
    np.testing.assert_allclose(last(x).numpy(), last.after_sum(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("model, overrides", [("mynet", []), ("lenet5", []),
                                              ("resnet18_nndl", ["model.use_residual=false"])])
def test_models_without_residual_blocks_warn_that_it_has_no_effect(caplog, model: str, overrides: list[str]) -> None:
    with caplog.at_level(logging.WARNING, logger="regbench"):
        _, layers = droppaths(model, *overrides)
    assert layers == []
    assert "reg.residual is set but" in caplog.text and "no residual places" in caplog.text


@pytest.mark.parametrize("rate, scale", [(1.0, 1.0), (-0.1, 1.0), (0.6, 2.0)])
def test_rate_outside_0_1_is_a_user_error(rate: float, scale: float) -> None:
    with pytest.raises(UserError, match=r"must be in \[0, 1\)"):
        DropPath(rate, scale)
