"""Dynamic ReLU (Chen et al., ECCV 2020), variants A, B and C as article 3 builds them.

y = max_k (a_k·x + b_k): a hyper-function of the input sets the K lines' coefficients per sample (A), per sample and
channel (B), or per sample, channel and position (C). The article permutes whole activation tensors to broadcast the
coefficients; here they become full-size maps by matrix products and the max of the lines has a hand-written
backward, because on CPU Paddle's broadcasting elementwise kernels, axis means and the gradients of elementwise max
and multiply are many times slower than same-shape elementwise kernels and matrix products.
"""
from __future__ import annotations

from typing import Any, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from regbench.errors import UserError


def _upper_envelope(
    x: paddle.Tensor, coefs: Sequence[paddle.Tensor], wins: list[paddle.Tensor] | None = None
) -> paddle.Tensor:
    """max_k (x·a_k + b_k) for coefs = (a_1..a_K, b_1..b_K), taking lines from the last; appends to `wins`, if
    given, 1 where line k (k = K-1 down to 1) is strictly above every later line, else 0."""
    k = len(coefs) // 2
    best = x * coefs[k - 1] + coefs[-1]
    for j in range(k - 2, -1, -1):
        line = x * coefs[j] + coefs[k + j]
        if wins is not None:
            wins.append(paddle.ceil(paddle.clip(line - best, 0.0, 1.0)))
        best = paddle.maximum(best, line)
    return best


def _in_dtypes(grads: Sequence[paddle.Tensor | None], dtypes: Sequence[Any]) -> tuple[paddle.Tensor | None, ...]:
    """Each gradient in the dtype of its forward input: backward runs outside autocast (float32 where an input was
    half precision is possible), and Paddle's PyLayer node passes on what backward returns without casting it."""
    return tuple(g if g is None or g.dtype == d else g.astype(d) for g, d in zip(grads, dtypes))


class _MaxOfLines(PyLayer):
    """The upper envelope with a hand-written backward; on ties the later line wins (at θ=0: ReLU's gradient)."""

    @staticmethod
    def forward(ctx, x: paddle.Tensor, *coefs: paddle.Tensor) -> paddle.Tensor:
        wins: list[paddle.Tensor] = []
        y = _upper_envelope(x, coefs, wins)
        ctx.save_for_backward(x, *coefs[:len(coefs) // 2], *wins)
        ctx.needs_grad = [not t.stop_gradient for t in (x, *coefs)]  # Paddle wants None for the others
        ctx.dtypes = [t.dtype for t in (x, *coefs)]
        return y

    @staticmethod
    def backward(ctx, grad: paddle.Tensor) -> tuple[paddle.Tensor | None, ...]:
        x, *rest = ctx.saved_tensor()
        k = (len(rest) + 1) // 2
        slopes, wins = rest[:k], rest[k:]
        grad_b = []  # the gradient reaching each line: grad where that line is the max, else 0
        rest_of_grad = grad
        for win in reversed(wins):  # line 1 first: an earlier line beats every later one where it wins
            part = rest_of_grad * win
            grad_b.append(part)
            rest_of_grad = rest_of_grad - part
        grad_b.append(rest_of_grad)
        grad_x = None
        if ctx.needs_grad[0]:
            grad_x = grad_b[0] * slopes[0]
            for part, a in zip(grad_b[1:], slopes[1:]):
                grad_x = grad_x + part * a
        needs_a, needs_b = ctx.needs_grad[1:k + 1], ctx.needs_grad[k + 1:]
        grad_a = [part * x if need else None for part, need in zip(grad_b, needs_a)]
        grad_b = [part if need else None for part, need in zip(grad_b, needs_b)]
        return _in_dtypes((grad_x, *grad_a, *grad_b), ctx.dtypes)


def _max_of_lines(x: paddle.Tensor, coefs: Sequence[paddle.Tensor], training: bool) -> paddle.Tensor:
    # inference (eval mode, e.g. an exported static graph, or no gradients): plain ops, no masks to keep
    if not training or (x.stop_gradient and all(c.stop_gradient for c in coefs)):
        return _upper_envelope(x, coefs)
    return _MaxOfLines.apply(x, *coefs)


HYPER_INPUTS = ("self", "block")  # what the hyper-function pools: the activated tensor, or its block's input


class _DyReLU(nn.Layer):
    """Hyper-function shared by the variants: average pool · fc C_h→C_h/r · ReLU · fc → 2·sigmoid − 1 = θ.

    What the hyper-function pools (C_h channels) is `hyper_input`: "self", the tensor it activates (C_h = C, article
    3); "block", the input of the block it sits in (C_h = block_channels), given as forward's second argument, as the
    Dynamic ReLU authors' DYReLU([x_in, x_out]) does (a model that passes no block_channels gets "self"); the lines
    act on the activated tensor either way. fc1's width is C_h // reduction (at least 1). Coefficients are θ·λ + init
    with λ = (lambda_a ×K, lambda_b ×K) and init = (init_a, init_b) (default: ReLU), both constant buffers. Defaults
    are article 3's experiments.
    Takes [B, C, H, W] maps or [B, C] fc outputs.
    """

    per_channel: bool  # fc2 gives 2K coefficients per channel (B, C) or per sample (A)

    def __init__(
        self,
        channels: int,
        reduction: int = 8,
        k: int = 2,
        lambda_a: float = 1.0,
        lambda_b: float = 0.5,
        init_a: Sequence[float] | None = None,
        init_b: Sequence[float] | None = None,
        hyper_input: str = "self",
        block_channels: int | None = None,
    ) -> None:
        super().__init__()
        if hyper_input not in HYPER_INPUTS:
            raise UserError(f"act.hyper_input must be one of {', '.join(HYPER_INPUTS)} (got {hyper_input!r})")
        if reduction < 1 or k < 2:
            raise UserError(f"DY-ReLU needs reduction >= 1 and k >= 2 (got {reduction} and {k}): fix act.reduction/k")
        init_a = [1.0] + [0.0] * (k - 1) if init_a is None else list(init_a)
        init_b = [0.0] * k if init_b is None else list(init_b)
        if len(init_a) != k or len(init_b) != k:
            raise UserError(f"act.init_a and act.init_b need k={k} values each (got {init_a} and {init_b})")
        if block_channels is None:  # a model without block inputs (all but MobileNetV2; build_model warns)
            hyper_input = "self"
        self.channels, self.k, self.hyper_input = channels, k, hyper_input
        self.hyper_channels = channels if hyper_input == "self" else block_channels
        hidden = max(self.hyper_channels // reduction, 1)  # LeNet's 6 channels still get one hidden unit
        self.fc1 = nn.Linear(self.hyper_channels, hidden)
        self.fc2 = nn.Linear(hidden, 2 * k * (channels if self.per_channel else 1))
        self.register_buffer("lambdas", paddle.to_tensor([lambda_a] * k + [lambda_b] * k), persistable=False)
        self.register_buffer("init_v", paddle.to_tensor(init_a + init_b), persistable=False)

    def _theta(self, x: paddle.Tensor) -> paddle.Tensor:
        """θ in (-1, 1) as [B, 1 or C, 2K], from the hyper-function's input x as [B, C_h, HW]."""
        channels, size = x.shape[1:]  # the batch size is left to reshape (0: as the input, -1: the rest), so
        # that a static graph with a variable batch (an exported model) computes the same
        # mean over positions as a matrix product: Paddle's CPU mean and its gradient are ~10x slower
        mean = paddle.full([size, 1], 1.0 / size, dtype=x.dtype)
        pooled = paddle.matmul(x.reshape([-1, size]), mean)
        theta = self.fc2(F.relu(self.fc1(pooled.reshape([-1, channels]))))
        return (2 * F.sigmoid(theta) - 1).reshape([0, -1, 2 * self.k])

    def _lines(self, x: paddle.Tensor, coefs: paddle.Tensor, basis: paddle.Tensor) -> paddle.Tensor:
        """max_k of the lines whose coefficient maps are coefs[:, :, j] @ basis: [B, C, 2K, r] @ [B|1, r, HW]."""
        maps = [paddle.matmul(c, basis) for c in paddle.unbind(coefs, axis=2)]
        # in x's dtype: under O1 the white-listed matmul gives half precision while x (after a conv with bias, a
        # batch norm) is often float32; the lines are then computed, and their max taken, in x's precision
        maps = [m if m.dtype == x.dtype else m.astype(x.dtype) for m in maps]
        return _max_of_lines(x, maps, self.training)

    def forward(self, x: paddle.Tensor, block_input: paddle.Tensor | None = None) -> paddle.Tensor:
        """The activated x; `block_input`, the input of x's block, is what hyper_input=block pools (else unused)."""
        shape = x.shape
        flat = x.reshape([0, self.channels, -1])
        hyper = flat if self.hyper_input == "self" else block_input.reshape([0, self.hyper_channels, -1])
        return self._dynamic(flat, hyper, shape[-1] if len(shape) == 4 else 1).reshape(shape)


class _SpatiallyShared(_DyReLU):
    """A and B: each coefficient map is a [B, C] coefficient times ones over the positions."""

    def _dynamic(self, x: paddle.Tensor, hyper: paddle.Tensor, width: int) -> paddle.Tensor:
        channels, size = x.shape[1:]
        coefs = self._theta(hyper) * self.lambdas + self.init_v
        if not self.per_channel:
            coefs = coefs.tile([1, channels, 1])
        coefs = coefs.unsqueeze(-1)
        return self._lines(x, coefs, paddle.ones([1, 1, size], dtype=x.dtype))


class DyReLUA(_SpatiallyShared):
    """DY-ReLU-A: one set of K lines per sample, shared by all channels and positions (fc C/r → 2K)."""

    per_channel = False


class DyReLUB(_SpatiallyShared):
    """DY-ReLU-B: K lines per sample and channel, shared by positions (fc C/r → 2K·C)."""

    per_channel = True


ATTENTION_SOFTMAX = ("positions", "width")


class DyReLUC(_DyReLU):
    """DY-ReLU-C: as B, with θ scaled per position by a spatial attention π from a 1×1 conv C→1.

    π = min(softmax(conv(x) / temperature) · HW / gamma, 1); coefficient = θ_c·π_hw·λ + init. π weighs the positions
    of the activated x whatever the hyper-function pools (a block's input has other positions where the block has a
    stride). attention_softmax "positions" takes the softmax over all H·W positions (the paper: π averages 1/gamma
    before clipping); "width" over each row's W positions only, as article 3's code (Paddle's default axis=-1 on the
    [B, 1, H, W] logits): then π averages H/gamma, clips to 1 nearly everywhere and the conv gets no gradient where
    it does.
    """

    per_channel = True

    def __init__(self, channels: int, *args: Any, temperature: float = 10.0, gamma: float = 3.0,
                 attention_softmax: str = "positions", **kwargs: Any) -> None:
        super().__init__(channels, *args, **kwargs)
        if attention_softmax not in ATTENTION_SOFTMAX:
            raise UserError(f"act.attention_softmax must be one of {', '.join(ATTENTION_SOFTMAX)} "
                            f"(got {attention_softmax!r})")
        self.conv = nn.Conv2D(channels, 1, 1)
        self.temperature, self.gamma, self.attention_softmax = temperature, gamma, attention_softmax

    def attention_scores(self, x: paddle.Tensor, width: int) -> paddle.Tensor:
        """softmax(conv(x) / temperature) · HW / gamma as [B, 1, HW] from x as [B, C, HW]: π before clipping."""
        channels, size = x.shape[1:]
        # the 1×1 conv as a matrix product over channels (same parameters as nn.Conv2D, no im2col)
        logits = paddle.matmul(self.conv.weight.reshape([1, channels]), x) + self.conv.bias
        if self.attention_softmax == "width":
            rows = F.softmax(logits.reshape([0, 1, size // width, width]) / self.temperature, axis=-1)
            return rows.reshape([0, 1, size]) * (size / self.gamma)
        return F.softmax(logits / self.temperature, axis=-1) * (size / self.gamma)

    def _dynamic(self, x: paddle.Tensor, hyper: paddle.Tensor, width: int) -> paddle.Tensor:
        attention = paddle.clip(self.attention_scores(x, width), max=1.0)
        residual = self._theta(hyper) * self.lambdas
        # coefficient map j = residual_j ⊗ π + init_j, one matrix product with rows (residual_j, init_j)
        coefs = paddle.stack([residual, paddle.zeros_like(residual) + self.init_v], axis=-1)
        basis = paddle.concat([attention, paddle.ones_like(attention)], axis=1)
        return self._lines(x, coefs, basis)
