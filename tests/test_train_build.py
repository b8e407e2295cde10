"""The trainer's composition root: the loop's settings from the config, where and how a run computes, and the
outcome of a run in summary.json and its exit code."""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import paddle
import pytest

from conftest import read_json
from regbench.config import compose
from regbench.errors import UserError
from regbench.atomic_files import WriteFailed
from regbench.models import build_model
from regbench.track import Trackers
from regbench.train.build import loop_config
from regbench.train.compute import Compute, set_up
from regbench.train.loop import Diverged, Interrupted
from regbench.train.outcome import recorded


def test_loop_settings_are_the_trainer_keys_the_schedules_interval_and_the_seeds() -> None:
    cfg = compose(["trainer.epochs=3", "trainer.eval_every=2", "trainer.eval_every_steps=5", "trainer.max_steps=11",
                   "trainer.label_smoothing=0.1", "trainer.log_every=7", "trainer.stop_check_s=0.5", "sched=step",
                   "seed=4", "seeds.augment=8"])
    assert asdict(loop_config(cfg, amp="bf16")) == dict(
        epochs=3, eval_every=2, eval_every_steps=5, max_steps=11, label_smoothing=0.1, sched_interval="epoch",
        order_seed=4, augment_seed=8, noise_seed=4, log_every=7, stop_check_s=0.5, amp="bf16")


def test_cpu_compute_keeps_float32_and_switches_conv_biases(caplog: pytest.LogCaptureFixture) -> None:
    cfg = compose(["model=lenet5", "trainer.device=cpu", "trainer.amp=bf16", "trainer.threads=1"])
    with caplog.at_level(logging.WARNING, logger="regbench"):
        compute = set_up(cfg.trainer)
    assert compute == Compute(device="cpu", amp="off", threads=1, fast_conv_bias=True)
    assert "trainer.amp=bf16 needs a GPU: computing in float32" in caplog.text
    assert paddle.get_device() == "cpu"
    model = build_model(cfg.model, cfg.act, cfg.reg)
    convs = [m for m in model.sublayers() if isinstance(m, paddle.nn.Conv2D)]
    compute.adapt(model)
    assert convs and all(type(m) is not paddle.nn.Conv2D for m in convs)  # each one's bias by a per-channel kernel
    plain = build_model(cfg.model, cfg.act, cfg.reg)
    Compute(device="cpu", amp="off", threads=1, fast_conv_bias=False).adapt(plain)
    assert all(type(m) is paddle.nn.Conv2D for m in plain.sublayers() if isinstance(m, paddle.nn.Conv2D))


def record(folder: Path, error: Exception | None, exit_on_failure: bool, earlier_s: float = 0.0) -> dict:
    """Run a block that raises `error` (None: completes) inside `recorded`; the summary it leaves."""
    summary = dict(status="running", error=None, wall_time_s=0.0)
    with recorded(folder, summary, earlier_s, lambda: Trackers({}), exit_on_failure):
        if error is not None:
            raise error
    return summary


def test_a_completed_run_says_so_with_the_wall_time_of_every_attempt(tmp_path: Path) -> None:
    summary = dict(status="running", error=None, wall_time_s=0.0)
    during = []
    with recorded(tmp_path, summary, 100.0, lambda: Trackers({}), exit_on_failure=True) as trackers:
        during.append((read_json(tmp_path / "summary.json"), trackers))
    assert during[0][0]["status"] == "running" and isinstance(during[0][1], Trackers)  # written before the block
    assert read_json(tmp_path / "summary.json") == summary
    assert summary["status"] == "completed" and summary["error"] is None and 100.0 <= summary["wall_time_s"] < 160


ENDINGS = [  # what ends a run early: its status and error in summary.json, the exit code of a single run
    (Diverged("training loss became nan by step 4"), "diverged", "training loss became nan by step 4", 1),
    (UserError("dataset.data_file is missing\nsecond line"), "failed", "dataset.data_file is missing", 2),
    (WriteFailed(Path("run/checkpoints/last.npz"), "no space left on device"), "failed",
     "cannot write run/checkpoints/last.npz: no space left on device; free space, then rerun with trainer.resume=true "
     "to continue from the last checkpoint", 1),
    (ValueError("a bug"), "failed", "ValueError: a bug", 2),
]


@pytest.mark.parametrize("error, status, message, code", ENDINGS)
def test_a_single_run_that_did_not_complete_exits_with_its_code(tmp_path: Path, error: Exception, status: str,
                                                                   message: str, code: int) -> None:
    with pytest.raises(SystemExit) as exit_:
        record(tmp_path, error, exit_on_failure=True)
    assert exit_.value.code == code
    written = read_json(tmp_path / "summary.json")
    assert (written["status"], written["error"]) == (status, message)


@pytest.mark.parametrize("error, status, message, code", ENDINGS)
def test_a_sweeps_job_that_did_not_complete_lets_the_sweep_go_on(tmp_path: Path, error: Exception, status: str,
                                                                    message: str, code: int) -> None:
    summary = record(tmp_path, error, exit_on_failure=False)
    assert (summary["status"], summary["error"]) == (status, message)
    assert read_json(tmp_path / "summary.json") == summary


@pytest.mark.parametrize("exit_on_failure", [True, False])
def test_a_stop_on_a_signal_exits_128_plus_the_signal_in_a_sweep_too(tmp_path: Path, exit_on_failure: bool) -> None:
    with pytest.raises(SystemExit) as exit_:
        record(tmp_path, Interrupted(15, step=7), exit_on_failure)
    assert exit_.value.code == 143
    written = read_json(tmp_path / "summary.json")
    assert written["status"] == "interrupted" and "stopped by signal 15 at a checkpoint at step 7" in written["error"]


def test_curves_are_redrawn_at_most_as_often_as_they_pay_for_and_in_full_at_the_end(tmp_path: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from regbench import run_dir
    from regbench.run import _Curves

    drawn: list[int] = []
    plot = run_dir.plot_curves
    monkeypatch.setattr(run_dir, "plot_curves", lambda path, rows, title: (drawn.append(len(rows)),
                                                                           plot(path, rows, title)))
    row = dict(epoch=1.0, train_loss=1.0, val_loss=1.0, train_acc=0.5, val_acc=0.5)
    curves = _Curves(tmp_path / "curves.png", "title")
    history: list[dict] = []
    for _ in range(5):  # evaluations a few milliseconds apart, early in training: none is drawn yet
        history = [*history, row]
        curves.update(history)
    assert drawn == [] and not (tmp_path / "curves.png").exists()
    curves.drawn_at -= curves.cost / curves.SHARE  # as long after the start as a drawing takes 20 times over
    curves.update([*history, row])
    assert drawn == [6] and (tmp_path / "curves.png").is_file()
    curves.update([*history, row, row])  # right after a drawing: not drawn again
    curves.close()  # training ended: everything evaluated is drawn
    curves.close()  # nothing new
    assert drawn == [6, 7]
