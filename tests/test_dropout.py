"""Article 2's Dropout / Dropout2d as conf/reg builds them: inverted scaling, whole channels, identity in eval."""
from __future__ import annotations

import numpy as np
import paddle
import pytest
from hydra.utils import instantiate

from regbench.config import compose
from regbench.models import build_model
from regbench.models.summary import count_params


def factories(reg: str, *overrides: str) -> dict:
    cfg = compose([f"reg={reg}", *overrides]).reg
    return {kind: instantiate(cfg[kind]) for kind in ("conv", "fc", "block") if cfg[kind] is not None}


def test_dropout_is_inverted_and_drops_about_p() -> None:
    layer = factories("dropout", "reg.p=0.3")["fc"]()
    x = paddle.rand([512, 256]) + 0.5
    x.stop_gradient = False
    y = layer(x)
    kept = (y != 0).numpy()
    assert 1 - kept.mean() == pytest.approx(0.3, abs=0.01)
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / 0.7, rtol=1e-6)
    (grad,) = paddle.grad([y], [x], [paddle.ones_like(y)])
    np.testing.assert_allclose(grad.numpy(), kept / 0.7, rtol=1e-6)


def test_dropout2d_zeroes_whole_channels() -> None:
    layer = factories("dropout2d")["conv"]()
    x = paddle.rand([64, 32, 5, 6]) + 0.5
    y = layer(x).numpy()
    kept = (y != 0).reshape(64, 32, -1)
    assert (kept.all(axis=2) | ~kept.any(axis=2)).all()  # each map all kept or all dropped
    assert 1 - kept.all(axis=2).mean() == pytest.approx(0.5, abs=0.05)
    np.testing.assert_allclose(y[y != 0], x.numpy()[y != 0] / 0.5, rtol=1e-6)


@pytest.mark.parametrize(("reg", "kind"), [("dropout", "fc"), ("dropout2d", "conv")])
def test_identity_in_eval_mode(reg, kind) -> None:
    layer = factories(reg)[kind]()
    layer.eval()
    x = paddle.rand([8, 4, 3, 3])
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


@pytest.mark.parametrize(
    ("reg", "conv", "fc"), [("none", 0, 0), ("dropout", 0, 1), ("dropout2d", 3, 0), ("dropout_all", 3, 1)]
)
def test_article_2_networks_a_to_d_on_lenet5(reg, conv, fc) -> None:
    cfg = compose(["model=lenet5", f"reg={reg}", "dataset=cifar10"])
    model = build_model(cfg.model, cfg.act, cfg.reg)
    layers = model.sublayers()
    assert sum(type(m) is paddle.nn.Dropout2D for m in layers) == conv
    assert sum(type(m) is paddle.nn.Dropout for m in layers) == fc
    assert all(m.p == 0.5 for m in layers if type(m) in (paddle.nn.Dropout, paddle.nn.Dropout2D))
    assert count_params(model)[0] == 62_006  # dropout adds no parameters


@pytest.mark.parametrize("reg", ["dropout", "dropout2d", "dropout_all"])
def test_dropout_variants_work_on_any_model(reg) -> None:
    cfg = compose(["model=mynet", f"reg={reg}", "dataset=cifar10", "reg.p=0.2"])
    model = build_model(cfg.model, cfg.act, cfg.reg)
    assert count_params(model)[0] == 159_498
    assert all(m.p == 0.2 for m in model.sublayers() if type(m) in (paddle.nn.Dropout, paddle.nn.Dropout2D))
    assert model(paddle.rand([2, 3, 32, 32])).shape == [2, 10]
