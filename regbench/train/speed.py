"""The trainer's speed switches: static graphs, cuDNN and TF32 flags, CPU threads, a faster conv bias on the CPU
(AMP modes: regbench/device.py).

Each one is safe on either device: the cuDNN and TF32 flags are only set on a GPU, the conv bias is only switched on
the CPU. README "Performance" has what each gives and why.
"""
from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from omegaconf import DictConfig

from regbench.reg.progress import FollowsProgress, following_progress
from regbench.train.tf32 import set_tf32, tf32_off

log = logging.getLogger("regbench")

_TRIAL_SEED = 20240607


def configure(device: str, threads: int, trainer: DictConfig) -> None:
    """Process-wide settings: MKL/OpenMP threads for CPU kernels; cuDNN and TF32 on a GPU (see gpu_flags)."""
    paddle.base.core.set_num_threads(threads)
    if device != "gpu":
        return
    users = user_deterministic(os.environ, _flag_before_regbench())
    paddle.set_flags(gpu_flags(device, cudnn_benchmark=trainer.cudnn_benchmark, deterministic=trainer.deterministic,
                               workspace_mb=trainer.cudnn_workspace_mb, user_deterministic=users))
    if users and trainer.cudnn_benchmark and not trainer.deterministic:
        log.info("FLAGS_cudnn_deterministic is set: trainer.cudnn_benchmark's algorithm search stays off")
    if not set_tf32(trainer.tf32):
        log.warning("trainer.tf32: this Paddle build has no TF32 switch: Paddle's default applies")


def gpu_flags(device: str, *, cudnn_benchmark: bool, deterministic: bool, workspace_mb: int,
              user_deterministic: bool) -> dict[str, Any]:
    """The Paddle flags regbench sets for these trainer settings on this device (none on the CPU).

    Every flag is set either way, so that a sweep's jobs, which share the process, do not inherit each other's.
    Paddle's cuDNN conv kernels refuse to run with exhaustive search and FLAGS_cudnn_deterministic both set, so the
    search is only on when neither trainer.deterministic nor the user (user_deterministic) asks for determinism.
    FLAGS_cudnn_batchnorm_spatial_persistent is left alone (Paddle's default: off), with AMP too: Paddle's batch-norm
    kernel warns that the persistent mode loses precision in NCHW, every model's layout, and Paddle once turned it
    off for NaNs (PaddlePaddle/Paddle#16243)."""
    if device != "gpu":
        return {}
    deterministic = deterministic or user_deterministic
    return {
        "FLAGS_conv_workspace_size_limit": workspace_mb,
        "FLAGS_cudnn_deterministic": deterministic,
        # time every cuDNN algorithm once per conv shape and keep the fastest (torch's cudnn.benchmark)
        "FLAGS_cudnn_exhaustive_search": cudnn_benchmark and not deterministic,
    }


def user_deterministic(environ: Mapping[str, str], flag: bool) -> bool:
    """Whether the user asked for FLAGS_cudnn_deterministic: in the environment, or as the paddle flag's value."""
    return flag or environ.get("FLAGS_cudnn_deterministic", "").strip().lower() in ("1", "true", "t", "yes", "y")


@functools.cache
def _flag_before_regbench() -> bool:
    """FLAGS_cudnn_deterministic as it was before regbench first set it (read once per process)."""
    try:
        return bool(paddle.get_flags(["FLAGS_cudnn_deterministic"])["FLAGS_cudnn_deterministic"])
    except ValueError:  # a CPU build of Paddle has no cuDNN flags
        return False


class _ConvBiasByBatchNorm(nn.Conv2D):
    """nn.Conv2D that adds its bias with an inference batch_norm (mean 0, variance 1, scale 1): the same numbers.

    Paddle's CPU kernels for the broadcasting [N,C,H,W] + [1,C,1,1] add and its gradient are several times slower
    than the per-channel batch_norm kernels, and in small networks they cost as much as the convs."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = F.conv2d(x, self.weight, None, self._stride, self._padding, self._dilation, self._groups,
                     self._data_format)
        scale = paddle.ones_like(self._ones)
        scale.stop_gradient = False  # batch_norm's backward skips the bias gradient when the scale takes none
        return F.batch_norm(y, self._zeros, self._ones, weight=scale, bias=self.bias, training=False, epsilon=0.0,
                            data_format=self._data_format)


def fast_conv_bias(model: nn.Layer) -> int:
    """Switch the model's biased zero-padded nn.Conv2D layers to _ConvBiasByBatchNorm in place; returns how many.

    Parameters, state-dict keys and outputs are unchanged (the constants are non-persistable buffers); gradients
    differ by float summation order only."""
    convs = [m for m in model.sublayers(include_self=True)
             if type(m) is nn.Conv2D and m.bias is not None and m._padding_mode == "zeros"]
    for conv in convs:
        conv.__class__ = _ConvBiasByBatchNorm
        channels = conv.weight.shape[0]
        conv.register_buffer("_zeros", paddle.zeros([channels]), persistable=False)
        conv.register_buffer("_ones", paddle.ones([channels]), persistable=False)
    return len(convs)


def compile_unavailable() -> str | None:
    """Why this Paddle cannot run trainer.compile; None when it can."""
    if int(paddle.__version__.split(".")[0]) < 3 and paddle.__version__ != "0.0.0":  # 0.0.0: a develop build
        # Paddle 2.6's dy2static leaves failed trial conversions behind (and crashed in them here)
        return f"trainer.compile needs Paddle 3 (this is {paddle.__version__})"
    return None


def compile_model(model: nn.Layer, sample: paddle.Tensor) -> list[str]:
    """Convert the model to static graphs (paddle.jit.to_static) where it converts; returns the layers left eager.

    Each layer is tried, in training and evaluation mode, on the input it gets from `sample`; a layer that fails is
    split into its children, and one whose children all convert stays eager with a warning naming it. Layers that
    follow the training progress (regbench.reg.progress) stay eager too: a static graph would freeze the progress
    they read in Python."""
    reason = compile_unavailable()
    if reason is not None:
        log.warning("%s: training eagerly", reason)
        return ["model"]
    state = {k: v.clone() for k, v in model.state_dict().items()}  # trial runs update BatchNorm statistics
    inputs = _layer_inputs(model, sample)
    modes = [(m, m.training) for m in model.sublayers(include_self=True)]
    eager: dict[tuple[str, str], list[str]] = {}  # (layer class, reason) -> qualified names

    def visit(name: str, layer: nn.Layer) -> bool:
        """Convert what converts in layer; True when something in it stays eager."""
        if name not in inputs:  # not called by the forward pass (its parameters may be used directly)
            return False
        if isinstance(layer, FollowsProgress):
            reason = "it follows the training progress, which a static graph would freeze"
            eager.setdefault((type(layer).__name__, reason), []).append(name)
            return True
        error = None
        if not following_progress(layer):
            error = _try_static(layer, inputs[name])
            if error is None:
                return False
        stuck = [visit(f"{name}.{child}" if name else child, sub) for child, sub in layer.named_children()]
        if error is not None and not any(stuck):  # its children convert: its own forward is what fails
            eager.setdefault((type(layer).__name__, f"it does not convert: {error}"), []).append(name or "model")
            return True
        return any(stuck)

    try:
        visit("", model)
    finally:
        model.set_state_dict(state)
        for m, training in modes:
            m.training = training
    for (kind, reason), names in eager.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        log.warning("trainer.compile: %s (%s) runs eagerly: %s", kind, shown, reason)
    return [name for names in eager.values() for name in names]


def _layer_inputs(model: nn.Layer, sample: paddle.Tensor) -> dict[str, tuple[Any, ...]]:
    """Each sublayer's positional inputs in one forward pass of the model on `sample` (by qualified name)."""
    inputs: dict[str, tuple[Any, ...]] = {}
    names = {id(m): n for n, m in model.named_sublayers(include_self=True)}

    def record(layer: nn.Layer, args: tuple[Any, ...]) -> None:
        inputs.setdefault(names[id(layer)], args)

    handles = [m.register_forward_pre_hook(record) for m in model.sublayers(include_self=True)]
    try:
        with paddle.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    return inputs


def _try_static(layer: nn.Layer, args: tuple[Any, ...]) -> str | None:
    """Convert layer.forward to a static graph if it runs and matches the eager layer on args (outputs and
    gradients in training, outputs in evaluation); else return why not."""
    static = paddle.jit.to_static(layer.forward, full_graph=True)
    try:
        for training in (True, False):
            with tf32_off():  # TF32 rounding would differ between the two runs by more than the tolerance
                expected, got = _trial(layer, layer.forward, args, training), _trial(layer, static, args, training)
            for a, b in zip(expected, got):
                if (a is None) != (b is None) or (a is not None and not np.allclose(a, b, rtol=1e-4, atol=1e-5)):
                    return "its static graph computes something else than the layer"
    except Exception as err:  # any conversion or run failure means: keep this layer eager
        # Paddle's messages embed the transformed code and advice: keep the first "SomeError: what" line
        named = re.search(r"\b\w+(?:Error|Exception): .+", str(err))
        return named.group(0).strip()[:200] if named else f"{type(err).__name__}: {str(err).strip()[:200]}"
    finally:
        layer.clear_gradients()
    layer.forward = static
    return None


def _trial(layer: nn.Layer, forward: Callable[..., Any], args: tuple[Any, ...], training: bool) -> list[Any]:
    """Outputs, then (in training) input and parameter gradients, of forward on fresh copies of args."""
    layer.train() if training else layer.eval()
    inputs = [_trial_input(a) for a in args]
    paddle.seed(_TRIAL_SEED)  # the same dropout draws for the eager and the static run
    with paddle.set_grad_enabled(training):
        out = forward(*inputs)
    outputs = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, paddle.Tensor)]
    results: list[Any] = [o.numpy() for o in outputs]
    if training:
        layer.clear_gradients()
        sum(o.astype("float32").sum() for o in outputs).backward()
        for t in [*inputs, *layer.parameters()]:
            if isinstance(t, paddle.Tensor) and not t.stop_gradient:
                results.append(None if t.grad is None else t.grad.numpy())
    return results


def _trial_input(arg: Any) -> Any:
    """A fresh copy of a recorded input that takes gradients when it is floating point."""
    if not isinstance(arg, paddle.Tensor):
        return arg
    copy = arg.detach().clone()
    copy.stop_gradient = not paddle.is_floating_point(copy)
    return copy
