"""The GPU switches decided on the CPU: cuDNN flags, determinism, AMP availability, TF32, the input normalization's
epsilon and bench's peak-memory window (issue 19 items 2, 3 and 5)."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from conftest import regbench
from regbench.bench.task import _times
from regbench.data.batches import BatchLoader
from regbench.data.splits import Split
from regbench.device import amp_unavailable
from regbench.train.speed import gpu_flags, user_deterministic
from regbench.train.tf32 import set_tf32, tf32_off

GPU = dict(cudnn_benchmark=True, deterministic=False, workspace_mb=512, user_deterministic=False)


def test_no_flags_on_the_cpu() -> None:
    for benchmark, deterministic in itertools.product([False, True], [False, True]):
        assert gpu_flags("cpu", cudnn_benchmark=benchmark, deterministic=deterministic, workspace_mb=512,
                         user_deterministic=True) == {}


def test_cudnn_benchmark_searches_with_the_configured_workspace() -> None:
    # these flags only: FLAGS_cudnn_batchnorm_spatial_persistent never (NCHW models), with AMP neither
    assert gpu_flags("gpu", **GPU) == {"FLAGS_conv_workspace_size_limit": 512, "FLAGS_cudnn_deterministic": False,
                                       "FLAGS_cudnn_exhaustive_search": True}
    flags = gpu_flags("gpu", **{**GPU, "cudnn_benchmark": False, "workspace_mb": 4096})
    assert flags["FLAGS_conv_workspace_size_limit"] == 4096 and flags["FLAGS_cudnn_exhaustive_search"] is False


def test_deterministic_sets_the_flag_and_turns_the_search_off() -> None:
    flags = gpu_flags("gpu", **{**GPU, "deterministic": True})
    assert flags["FLAGS_cudnn_deterministic"] is True and flags["FLAGS_cudnn_exhaustive_search"] is False


def test_a_users_deterministic_flag_is_kept_and_keeps_the_search_off() -> None:
    flags = gpu_flags("gpu", **{**GPU, "user_deterministic": True})
    assert flags["FLAGS_cudnn_deterministic"] is True and flags["FLAGS_cudnn_exhaustive_search"] is False


def test_never_exhaustive_search_with_determinism() -> None:
    """Paddle's cuDNN convs refuse to run with both: no combination of settings may produce it."""
    for benchmark, deterministic, user in itertools.product([False, True], [False, True], [False, True]):
        flags = gpu_flags("gpu", cudnn_benchmark=benchmark, deterministic=deterministic, workspace_mb=512,
                          user_deterministic=user)
        assert not (flags["FLAGS_cudnn_exhaustive_search"] and flags["FLAGS_cudnn_deterministic"])
        assert flags["FLAGS_cudnn_deterministic"] == (deterministic or user)
        assert flags["FLAGS_cudnn_exhaustive_search"] == (benchmark and not (deterministic or user))


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("True", True), ("0", False),
                                             ("false", False), ("", False)])
def test_users_deterministic_flag_from_the_environment_or_paddle(value: str, expected: bool) -> None:
    assert user_deterministic({"FLAGS_cudnn_deterministic": value}, False) is expected
    assert user_deterministic({"FLAGS_cudnn_deterministic": value}, True) is True
    assert user_deterministic({}, False) is False


def test_amp_needs_what_auto_cast_needs() -> None:
    # Paddle's is_float16_supported() says yes from compute capability 5.3; auto_cast wants 7.0 for fp16
    assert amp_unavailable("fp16", True, (7, 0)) is None
    assert amp_unavailable("fp16", True, (6, 1)) == (
        "trainer.amp=fp16 needs a GPU of compute capability 7.0 or newer (this one: 6.1)")
    assert amp_unavailable("fp16", False, (8, 0)) is not None
    assert amp_unavailable("bf16", True, (8, 0)) is None
    assert "8.0 or newer (this one: 7.5)" in amp_unavailable("bf16", True, (7, 5))
    assert amp_unavailable("bf16", False, (9, 0)) is not None


def test_tf32_off_restores_the_switches() -> None:
    core = paddle.base.core
    if not hasattr(core, "get_cublas_switch"):  # Paddle 2.6 CPU build: no switches, nothing to do
        assert set_tf32(True) is False
        with tf32_off():
            pass
        return
    assert set_tf32(True) is True
    with tf32_off():
        assert (core.get_cublas_switch(), core.get_cudnn_switch()) == (False, False)
    assert (core.get_cublas_switch(), core.get_cudnn_switch()) == (True, True)
    with pytest.raises(RuntimeError), tf32_off():
        raise RuntimeError("a failing reference pass")
    assert (core.get_cublas_switch(), core.get_cudnn_switch()) == (True, True)


def test_input_normalization_is_unchanged_by_its_cudnn_epsilon() -> None:
    """The batches equal, bit for bit, the earlier batch_norm with epsilon 0 (which cuDNN refuses)."""
    rng = np.random.default_rng(3)
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    split = Split(rng.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8), np.arange(40, dtype=np.int64))
    loader = BatchLoader(split, 16, mean, std, crop_padding=0, resized_crop_scale=[0.08, 1.0])
    got = np.concatenate([x.numpy() for x, _ in loader.epoch(None)])
    scale = paddle.to_tensor(np.array([1.0 / (255.0 * s) for s in std], np.float32))
    shift = paddle.to_tensor(np.array([-m / s for m, s in zip(mean, std)], np.float32))
    before = F.batch_norm(paddle.to_tensor(split.images).astype("float32"), paddle.zeros_like(scale),
                          paddle.ones_like(scale), weight=scale, bias=shift, training=False, epsilon=0.0).numpy()
    assert np.array_equal(got, before)


def test_bench_resets_the_peak_between_warm_up_and_timed_steps() -> None:
    calls: list[str] = []
    times = _times(lambda: calls.append("step"), lambda: calls.append("sync"), 2, 3,
                   after_warmup=lambda: calls.append("reset"))
    assert len(times) == 3
    assert calls == ["step", "step", "sync", "reset"] + ["step", "sync"] * 3


@pytest.mark.parametrize("override, message", [
    ("trainer.deterministic=maybe", "trainer.deterministic='maybe' is invalid: it must be true or false"),
    ("trainer.cudnn_workspace_mb=-1", "trainer.cudnn_workspace_mb=-1 is invalid: it must be an integer >= 0 (MB)"),
])
def test_bad_gpu_switch_is_one_line_exit_2(tmp_path: Path, override: str, message: str) -> None:
    proc = regbench("train", override, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1
