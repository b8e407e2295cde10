"""DropBlock (Ghiasi et al., NeurIPS 2018): zero square blocks of each channel's map in training."""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from regbench.errors import UserError
from regbench.reg.progress import FollowsProgress

SCHEDULES = ("constant", "linear")
SEED_REGIONS = ("valid", "full")
PLACEMENTS = ("stage", "block")


def drop_block_2d(x: paddle.Tensor, rate: float, block_size: int, seed_region: str = "valid",
                  training: bool = True) -> paddle.Tensor:
    """[N, C, H, W] maps with blocks of block_size² units (clipped to the map) zeroed, about `rate` of all units,
    kept units × count/kept; x itself outside training or at rate 0.

    seed_region "valid" puts block seeds only where a whole block fits, as in the paper, so the dropped fraction is
    about `rate` on any map size. "full" seeds anywhere with the same gamma, as article 1 and PaddleDetection do;
    that over-drops on small maps (7×7 maps, block 5, rate 0.1: about 31% dropped).
    """
    if not training or rate == 0.0:
        return x
    if x.ndim != 4:
        raise UserError(
            f"DropBlock needs [N, C, H, W] feature maps (got shape {x.shape}): put it at conv or block places"
        )
    return x * _keep_mask(x, rate, block_size, seed_region)


def _keep_mask(x: paddle.Tensor, rate: float, block_size: int, seed_region: str) -> paddle.Tensor:
    """1 at kept units, 0 in dropped blocks, times count/kept."""
    batch, channels, height, width = x.shape
    bh, bw = min(block_size, height), min(block_size, width)
    valid_h, valid_w = height - bh + 1, width - bw + 1
    # the paper's gamma: seeds over the valid region × block area = rate × map area
    gamma = rate * height * width / (bh * bw * valid_h * valid_w)
    if seed_region == "valid":
        # seed (i, j) drops rows i..i+bh-1, columns j..j+bw-1: pad the seed map by bh-1, bw-1 all round
        seed_shape, padding = [valid_h, valid_w], [bh - 1, bw - 1]
    else:
        # seed (i, j) drops the block centred on it; for even sizes one more row/column after it than
        # before (the article's mask, which grows by one, cropped to the map)
        seed_shape, padding = [height, width], [bh // 2, (bh - 1) // 2, bw // 2, (bw - 1) // 2]
    seeds = paddle.bernoulli(paddle.full([batch, channels, *seed_shape], gamma, dtype=x.dtype))
    dropped = F.max_pool2d(seeds, [bh, bw], stride=1, padding=padding)
    keep = 1.0 - dropped
    kept = paddle.clip(keep.sum(), min=1.0)  # all dropped: the output is 0, not NaN
    return keep * (batch * channels * height * width / kept)


class DropBlock(nn.Layer, FollowsProgress):
    """drop_block_2d at rate drop_scale·(1 − keep_prob) in training, identity in evaluation.

    schedule "linear" ramps keep_prob from 1 at progress 0 to keep_prob at progress 1 (the trainer calls
    set_progress(step / total_steps)), as the paper's official code.
    """

    def __init__(
        self,
        block_size: int,
        keep_prob: float,
        schedule: str = "constant",
        seed_region: str = "valid",
        drop_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if block_size < 1:
            raise UserError(f"DropBlock block_size must be >= 1 (got {block_size})")
        if not 0.0 < keep_prob <= 1.0:
            raise UserError(f"DropBlock keep_prob must be in (0, 1] (got {keep_prob})")
        if schedule not in SCHEDULES:
            raise UserError(f"DropBlock schedule must be one of {', '.join(SCHEDULES)} (got {schedule!r})")
        if seed_region not in SEED_REGIONS:
            raise UserError(
                f"DropBlock seed_region must be one of {', '.join(SEED_REGIONS)} (got {seed_region!r})"
            )
        if not 0.0 <= drop_scale * (1.0 - keep_prob) <= 1.0:
            raise UserError(
                f"DropBlock drop rate drop_scale·(1 − keep_prob) must be in [0, 1] "
                f"(got {drop_scale}·(1 − {keep_prob}))"
            )
        self.block_size, self.keep_prob, self.schedule = block_size, keep_prob, schedule
        self.seed_region, self.drop_scale = seed_region, drop_scale
        self.progress = 0.0

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1] (step / total steps); drives the linear keep_prob ramp."""
        self.progress = min(max(float(progress), 0.0), 1.0)

    @property
    def drop_rate(self) -> float:
        """drop_scale·(1 − keep_prob_t): keep_prob_t = 1 − progress·(1 − keep_prob) (linear) or keep_prob."""
        ramp = self.progress if self.schedule == "linear" else 1.0
        return self.drop_scale * ramp * (1.0 - self.keep_prob)

    def extra_repr(self) -> str:
        return (
            f"block_size={self.block_size}, keep_prob={self.keep_prob}, schedule={self.schedule}, "
            f"seed_region={self.seed_region}, drop_scale={self.drop_scale}"
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return drop_block_2d(x, self.drop_rate, self.block_size, self.seed_region, self.training)


def placed_dropblock(placement: str, block_size: int, keep_prob: float, schedule: str, seed_region: str,
                     site: str | None = None, drop_scale: float = 1.0) -> nn.Layer:
    """What a model gets at one of its places: a DropBlock where the place's `site` is the `placement` asked for,
    nothing (Identity) at the model's other DropBlock places.

    Sites: "stage", after a stage of convs (MyNet: after conv3; ResNet18: after stages 3 and 4); "block", inside
    every residual block of ResNet18's stages 3 and 4, where the official TF ResNet applies DropBlock in its
    bottleneck blocks (after each conv·BN(·ReLU) of the body and on the shortcut). Called without a site (at conv
    places: reg.conv=${reg.dropblock}) it is always a DropBlock.
    """
    if placement not in PLACEMENTS:
        raise UserError(f"reg.dropblock.placement must be one of {', '.join(PLACEMENTS)} (got {placement!r})")
    if site is not None and site != placement:
        return nn.Identity()
    return DropBlock(block_size, keep_prob, schedule=schedule, seed_region=seed_region, drop_scale=drop_scale)
