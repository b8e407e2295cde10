"""DropBlock: shapes, block structure, drop fractions (valid region and article 1's full region), scaling, schedule."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from regbench.config import compose
from regbench.errors import UserError
from regbench.reg.dropblock import DropBlock
from regbench.models import build_model
from regbench.models.summary import count_params


def positive(shape: list[int]) -> paddle.Tensor:
    """Inputs without zeros, so zeros in the output are exactly the dropped units."""
    return paddle.rand(shape) + 0.5


def expected_fraction(size: int, block: int, drop: float, region: str) -> float:
    """Exact expected dropped fraction on a size×size map: 1 − mean over units of (1 − γ)^(seeds covering it)."""
    gamma = drop / block**2 * (size / (size - block + 1)) ** 2
    if region == "valid":
        seeds = range(size - block + 1)
        covers = [sum(s <= i < s + block for s in seeds) for i in range(size)]
    else:
        covers = [sum(s - block // 2 <= i <= s + (block - 1) // 2 for s in range(size)) for i in range(size)]
    return 1.0 - float(np.mean((1.0 - gamma) ** np.outer(covers, covers)))


def dropped_fraction(layer: DropBlock, shape: list[int]) -> float:
    return float((layer(positive(shape)) == 0).astype("float32").mean())


@pytest.mark.parametrize("block", [1, 2, 3, 4, 5, 7, 12])
@pytest.mark.parametrize("region", ["valid", "full"])
@pytest.mark.parametrize("shape", [[2, 3, 7, 7], [2, 3, 6, 9], [2, 3, 10, 4], [1, 1, 1, 5]])
def test_output_shape_equals_input(block, region, shape) -> None:
    layer = DropBlock(block, 0.7, seed_region=region)
    y = layer(positive(shape))
    assert y.shape == shape
    assert np.isfinite(y.numpy()).all()


@pytest.mark.parametrize(
    ("size", "block", "article"), [(7, 5, 0.31), (8, 7, 0.62), (14, 7, 0.22), (32, 3, 0.10)]
)
def test_full_region_reproduces_article_1_over_dropping(size, block, article) -> None:
    paddle.seed(0)
    frac = dropped_fraction(DropBlock(block, 0.9, seed_region="full"), [64, 64, size, size])
    assert frac == pytest.approx(expected_fraction(size, block, 0.1, "full"), abs=0.01)
    assert frac == pytest.approx(article, abs=0.015)  # ARTICLES.md's measured fractions


@pytest.mark.parametrize(("size", "block"), [(7, 5), (8, 7), (14, 7), (32, 3), (4, 5), (9, 4)])
def test_valid_region_drops_about_one_minus_keep_prob(size, block) -> None:
    paddle.seed(0)
    frac = dropped_fraction(DropBlock(block, 0.9), [64, 64, size, size])
    assert frac == pytest.approx(expected_fraction(size, min(block, size), 0.1, "valid"), abs=0.01)
    assert frac == pytest.approx(0.1, abs=0.012)


@pytest.mark.parametrize("region", ["valid", "full"])
@pytest.mark.parametrize(("block", "shape"), [(3, [4, 8, 9, 9]), (4, [4, 8, 10, 7])])
def test_zeros_come_in_whole_blocks_per_channel(region, block, shape) -> None:
    paddle.seed(1)
    zero = (DropBlock(block, 0.85, seed_region=region)(positive(shape)) == 0).numpy()
    height, width = shape[2:]
    for n in range(shape[0]):
        for c in range(shape[1]):
            z = zero[n, c]
            covered = np.zeros_like(z)
            # valid: every zero lies in an all-zero block inside the map; full: blocks may be cut by the border
            pad = 0 if region == "valid" else block - 1
            zp = np.pad(z, pad, constant_values=True)
            for i in range(height + 2 * pad - block + 1):
                for j in range(width + 2 * pad - block + 1):
                    if zp[i:i + block, j:j + block].all():
                        covered_p = np.zeros_like(zp)
                        covered_p[i:i + block, j:j + block] = True
                        covered |= covered_p[pad:pad + height, pad:pad + width]
            np.testing.assert_array_equal(covered, z)
    per_map = zero.reshape(-1, height * width)
    assert len({m.tobytes() for m in per_map}) > 1  # channels draw their own blocks
    if region == "valid":  # a lone seed drops exactly block² units
        counts = per_map.sum(axis=1)
        assert np.bincount(counts[counts > 0]).argmax() == block * block


def test_kept_units_scaled_by_count_over_kept_and_gradient_only_through_them() -> None:
    x = positive([8, 4, 9, 9])
    x.stop_gradient = False
    y = DropBlock(3, 0.8)(x)
    kept = (y != 0).numpy()
    assert 0 < kept.sum() < kept.size
    scale = kept.size / kept.sum()
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] * scale, rtol=1e-6)
    (grad,) = paddle.grad([y], [x], [paddle.ones_like(y)])
    np.testing.assert_allclose(grad.numpy(), kept * scale, rtol=1e-6)


def test_everything_dropped_gives_zeros_not_nan() -> None:
    # block = map and drop rate 1: gamma = 1, every seed fires
    y = DropBlock(8, 0.5, drop_scale=2.0)(positive([2, 3, 4, 4]))
    np.testing.assert_array_equal(y.numpy(), np.zeros([2, 3, 4, 4], "float32"))


def test_identity_in_eval_mode_and_at_keep_prob_one() -> None:
    x = positive([2, 3, 7, 7])
    layer = DropBlock(3, 0.5)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    np.testing.assert_array_equal(DropBlock(3, 1.0)(x).numpy(), x.numpy())


def test_linear_schedule_ramps_keep_prob_with_progress() -> None:
    layer = DropBlock(3, 0.8, schedule="linear")
    x = positive([2, 3, 8, 8])
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())  # progress 0: keep_prob 1
    layer.set_progress(0.5)
    assert layer.drop_rate == pytest.approx(0.1)  # kp_t = 1 − 0.5·(1 − 0.8) = 0.9
    paddle.seed(2)
    assert dropped_fraction(layer, [64, 64, 16, 16]) == pytest.approx(0.1, abs=0.012)
    layer.set_progress(1.0)
    assert layer.drop_rate == pytest.approx(0.2)
    constant = DropBlock(3, 0.8)
    constant.set_progress(0.5)
    assert constant.drop_rate == pytest.approx(0.2)


def test_drop_scale_scales_the_drop_rate() -> None:
    paddle.seed(3)
    layer = DropBlock(3, 0.6, drop_scale=0.25)
    assert layer.drop_rate == pytest.approx(0.1)
    assert dropped_fraction(layer, [64, 64, 16, 16]) == pytest.approx(0.1, abs=0.012)


@pytest.mark.parametrize(
    "kwargs",
    [{"block_size": 0}, {"keep_prob": 0.0}, {"keep_prob": 1.5}, {"schedule": "cosine"}, {"seed_region": "some"},
     {"drop_scale": -1.0}, {"drop_scale": 3.0, "keep_prob": 0.5}],
)
def test_bad_settings_raise_user_error(kwargs) -> None:
    with pytest.raises(UserError):
        DropBlock(**{"block_size": 3, "keep_prob": 0.9, **kwargs})


def test_fc_input_raises_user_error() -> None:
    with pytest.raises(UserError, match="N, C, H, W"):
        DropBlock(3, 0.9)(paddle.rand([4, 10]))


def test_reg_dropblock_on_mynet_goes_after_conv3() -> None:
    cfg = compose(["model=mynet", "reg=dropblock", "dataset=cifar10"])
    model = build_model(cfg.model, cfg.act, cfg.reg)
    blocks = [m for m in model.sublayers() if isinstance(m, DropBlock)]
    assert len(blocks) == 1
    (block,) = blocks
    # the default block fits conv3's 7×7 maps (article 1's experiment sets its own 5)
    assert (block.block_size, block.keep_prob, block.schedule, block.drop_scale) == (3, 0.9, "constant", 1.0)
    assert count_params(model)[0] == 159_498
    # it sees conv3's 64×7×7 maps
    model.train()
    seen = []
    block.register_forward_post_hook(lambda layer, inputs, output: seen.append(inputs[0].shape))
    model(paddle.rand([2, 3, 32, 32]))
    assert seen == [[2, 64, 7, 7]]


@pytest.mark.parametrize(
    ("overrides", "places"), [(["reg.conv=${reg.dropblock}", "reg.block=null"], 4), (["reg.conv=${reg.block}"], 5)]
)
def test_reg_dropblock_can_go_to_conv_places(overrides, places) -> None:
    """conf/reg/dropblock.yaml's command line moves it to the conv places (4 in mynet); or use both kinds."""
    cfg = compose(["model=mynet", "reg=dropblock", "dataset=cifar10", *overrides])
    model = build_model(cfg.model, cfg.act, cfg.reg)
    assert len([m for m in model.sublayers() if isinstance(m, DropBlock)]) == places
    model.train()
    assert model(paddle.rand([2, 3, 32, 32])).shape == [2, 10]


def dropblocks_seen(*overrides: str) -> list[tuple[float, list[int]]]:
    """(drop_scale, input shape) of every DropBlock a CIFAR ResNet18 runs in training, in forward order."""
    cfg = compose(["model=resnet18", "reg=dropblock", "dataset=cifar10", *overrides])
    model = build_model(cfg.model, cfg.act, cfg.reg)
    assert count_params(model)[0] == 11_183_562
    seen = []
    for m in model.sublayers():
        if isinstance(m, DropBlock):
            m.register_forward_post_hook(lambda layer, inputs, output: seen.append((layer.drop_scale, inputs[0].shape)))
            assert m.block_size == 3  # the default fits stage 4's 4×4 maps
    model.train()
    assert model(paddle.rand([2, 3, 32, 32])).shape == [2, 10]
    return seen


def test_resnet18_stage_placement_gets_a_quarter_rate_after_stage_3() -> None:
    assert dropblocks_seen() == [(0.25, [2, 256, 8, 8]), (1.0, [2, 512, 4, 4])]


def test_resnet18_block_placement_is_the_official_codes() -> None:
    """Inside every block of stages 3 and 4: after conv1·BN·act, after conv2·BN, on the shortcut (projection or not)."""
    seen = dropblocks_seen("reg.dropblock.placement=block")
    assert seen == [(0.25, [2, 256, 8, 8])] * 6 + [(1.0, [2, 512, 4, 4])] * 6


def test_placement_block_on_mynet_leaves_it_without_dropblock(caplog: pytest.LogCaptureFixture) -> None:
    cfg = compose(["model=mynet", "reg=dropblock", "dataset=cifar10", "reg.dropblock.placement=block"])
    model = build_model(cfg.model, cfg.act, cfg.reg)
    assert not [m for m in model.sublayers() if isinstance(m, DropBlock)]
    assert "reg.block is set but regbench.models.mynet.MyNet has no block places for it" in caplog.text
    cfg = compose(["model=resnet18", "reg=dropblock", "dataset=cifar10", "reg.dropblock.placement=groups"])
    with pytest.raises(UserError, match="reg.dropblock.placement must be one of stage, block"):
        build_model(cfg.model, cfg.act, cfg.reg)
