"""Exact fp16 resume: the GradScaler's state goes into the checkpoint and comes back on resume (issue 19).

Paddle enables a GradScaler only on a GPU, XPU or custom device (AmpScaler.__init__ asks the tracer for its place)
and is a no-op elsewhere. Its state is plain numbers and a one-element scale, the same object on every device, so
the tests build it as on a GPU and run everything else for real on the CPU: the trainer's fp16 step (autocast
itself does nothing on the CPU, the loss scaling, unscaling and scale updates do), its checkpoint and its resume.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paddle
import paddle.amp.grad_scaler as grad_scaler
import pytest

from regbench.config import compose
from regbench.train.checkpoint import load_checkpoint
from regbench.train.loop import Trainer
from regbench.train.build import build_trainer

# non-default everywhere: the scale and counters a run has reached, settings another run might use
CHOSEN = {"scale": np.array([3072.0], np.float32), "incr_ratio": 3.0, "decr_ratio": 0.25, "incr_every_n_steps": 4,
          "decr_every_n_nan_or_inf": 5, "incr_count": 7, "decr_count": 3, "use_dynamic_loss_scaling": False}


def gpu_scaler(monkeypatch: pytest.MonkeyPatch) -> paddle.amp.GradScaler:
    """Trainer.__init__'s GradScaler() as a GPU builds it: enabled."""
    gpu = SimpleNamespace(is_gpu_place=lambda: True, is_xpu_place=lambda: False, is_custom_place=lambda: False)
    with monkeypatch.context() as patch:
        patch.setattr(grad_scaler, "_dygraph_tracer", lambda: SimpleNamespace(_expected_place=gpu))
        scaler = paddle.amp.GradScaler()
    assert scaler.is_enable()
    return scaler


def fp16_trainer(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Trainer:
    cfg = compose(["model=lenet5", "dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64",
                   "trainer.batch_size=32"])
    trainer, _ = build_trainer(cfg, folder, on_eval=lambda progress: None)
    trainer.cfg.amp, trainer.scaler = "fp16", gpu_scaler(monkeypatch)  # what trainer.amp=fp16 gives on a GPU
    return trainer


def assert_same_state(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert np.array_equal(got[key], want[key]) and type(got[key]) is type(want[key]), key


def differing(a: dict, b: dict) -> set[str]:
    return {key for key in a if not np.array_equal(a[key], b[key])}


def test_scaler_state_after_real_steps_survives_checkpoint_and_resume(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first = fp16_trainer(tmp_path, monkeypatch)
    first.scaler.load_state_dict({**CHOSEN, "incr_count": 2, "use_dynamic_loss_scaling": True})
    batches = first.train_loader.epoch(seed=0)
    for _ in range(3):  # finite gradients: counts 3, 4 → scale ×3 and count 0, then 1
        first.train_step(*next(batches))
        first.progress.step += 1
    saved = first.scaler.state_dict()
    assert (float(saved["scale"][0]), saved["incr_count"], saved["decr_count"]) == (9216.0, 1, 0)
    first._checkpoint(improved=False)

    resumed = fp16_trainer(tmp_path, monkeypatch)
    fresh = resumed.scaler.state_dict()
    assert differing(saved, fresh) == {"scale", "incr_ratio", "decr_ratio", "incr_every_n_steps",
                                       "decr_every_n_nan_or_inf", "incr_count"}
    assert resumed.resume()
    assert_same_state(resumed.scaler.state_dict(), saved)
    # and the run goes on as if never stopped: the same next step from the same state
    images, labels = next(batches)
    losses = [float(t.train_step(images, labels)[0]) for t in (first, resumed)]
    assert losses[0] == losses[1]
    assert_same_state(resumed.scaler.state_dict(), first.scaler.state_dict())
    for a, b in zip(first.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_every_scaler_field_is_stored_as_plain_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = fp16_trainer(tmp_path, monkeypatch)
    first.scaler.load_state_dict(CHOSEN)
    first._checkpoint(improved=True)  # best.npz, copied to last.npz
    for name in ("best", "last"):
        with np.load(tmp_path / "checkpoints" / f"{name}.npz", allow_pickle=False) as data:
            assert data["scaler/scale"].dtype == np.float32
            meta = json.loads(str(data["__meta__"]))
        assert {k: v for k, v in meta.items() if k.startswith("scaler/")} == {
            f"scaler/{k}": v for k, v in CHOSEN.items() if k != "scale"}
        assert_same_state(load_checkpoint(tmp_path / "checkpoints" / f"{name}.npz").scaler, CHOSEN)

    resumed = fp16_trainer(tmp_path, monkeypatch)
    assert differing(CHOSEN, resumed.scaler.state_dict()) == set(CHOSEN)
    assert resumed.resume()
    assert_same_state(resumed.scaler.state_dict(), CHOSEN)


def test_checkpoint_without_scaler_state_resumes_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a float32 run's checkpoint, byte for byte what regbench wrote before scaler state was saved
    float32 = fp16_trainer(tmp_path, monkeypatch)
    float32.scaler = None
    float32.progress.step = 5
    float32._checkpoint(improved=False)
    assert load_checkpoint(float32.last_path).scaler == {}
    resumed = fp16_trainer(tmp_path, monkeypatch)
    fresh = resumed.scaler.state_dict()
    assert resumed.resume() and resumed.progress.step == 5
    assert_same_state(resumed.scaler.state_dict(), fresh)
    # and an fp16 checkpoint resumed without a scaler (trainer.amp=off) ignores the scaler state
    resumed._checkpoint(improved=False)
    plain = fp16_trainer(tmp_path, monkeypatch)
    plain.scaler = None
    assert plain.resume() and plain.progress.step == 5
