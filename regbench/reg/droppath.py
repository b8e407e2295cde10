"""DropPath, stochastic depth (Huang et al., ECCV 2016): drop a residual branch for whole samples in training."""
from __future__ import annotations

import paddle
import paddle.nn as nn

from regbench.errors import UserError


def drop_path(x: paddle.Tensor, rate: float, training: bool = True) -> paddle.Tensor:
    """x with each sample zeroed with probability `rate`, kept samples × 1/(1 − rate); x itself outside training or
    at rate 0."""
    if not training or rate == 0.0:
        return x
    keep = 1.0 - rate
    kept = paddle.bernoulli(paddle.full([x.shape[0]] + [1] * (x.ndim - 1), keep, dtype=x.dtype))
    return x * (kept / keep)


class DropPath(nn.Layer):
    """drop_path at rate rate·drop_scale in training, identity in evaluation.

    The model places it on a residual branch before the sum, with drop_scale = l/L for block l of L: the paper's
    linear rule, survival 1 − (l/L)(1 − p_L) with rate = 1 − p_L at the last block. Identity in evaluation, where
    the scaling in training keeps the expected branch output equal (the paper scales at test time instead).
    """

    def __init__(self, rate: float, drop_scale: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= rate * drop_scale < 1.0:
            raise UserError(f"DropPath drop rate rate·drop_scale must be in [0, 1) (got {rate}·{drop_scale})")
        self.rate, self.drop_scale = rate, drop_scale

    @property
    def drop_rate(self) -> float:
        return self.rate * self.drop_scale

    def extra_repr(self) -> str:
        return f"rate={self.rate}, drop_scale={self.drop_scale}"

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return drop_path(x, self.drop_rate, self.training)
