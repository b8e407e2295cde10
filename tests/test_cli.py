"""The `regbench` command line end to end, in real subprocesses: help, summary, train, multirun, resume, errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import read_json, read_jsonl, regbench

RUN_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log", "metrics.jsonl",
             "summary.json", "curves.png", "checkpoints/best.npz", "checkpoints/last.npz")


def assert_run_folder(folder: Path) -> dict:
    for name in RUN_FILES:
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    return read_json(folder / "summary.json")


def test_help_lists_commands_and_config_groups(tmp_path: Path) -> None:
    out = regbench("--help", cwd=tmp_path).stdout
    for command in ("train", "summary", "table", "plot"):
        assert f"  {command} " in out
    out = regbench("train", "--help", cwd=tmp_path).stdout
    for group in ("model:", "act:", "reg:", "dataset:", "optim:", "sched:", "trainer:"):
        assert group in out
    assert "resnet18_nndl" in out and "mnist5k" in out


@pytest.mark.slow
def test_console_script_finds_conf_from_any_directory(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "regbench"
    proc = subprocess.run([str(script), "train", "--cfg", "job", "model=mynet"], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    assert "regbench.models.mynet.MyNet" in proc.stdout


@pytest.mark.slow
def test_shell_completion_routes_to_train(tmp_path: Path) -> None:
    env = {"COMP_LINE": "regbench train mod", "COMP_POINT": "18"}
    out = regbench("-sc", "query=bash", cwd=tmp_path, env=env).stdout
    assert "model=" in out.split()


def resnet18_cifar_counts() -> tuple[int, int]:
    """paddle.flops's count and the multiply-accumulates of article 3's ResNet18 on 3x32x32, by hand from the
    architecture: convs (no bias) count out_elements * in_channels * k * k in both, the classifier in * out;
    paddle.flops adds BatchNorm's 2 per input element and the 4x4 average pool's (16 + 1) per output."""
    def conv(cin: int, cout: int, k: int, hw: int) -> int:
        return cout * hw * hw * cin * k * k

    def bn(c: int, hw: int) -> int:
        return 2 * c * hw * hw

    macs, norms, cin = conv(3, 64, 3, 32), bn(64, 32), 64
    for cout, hw in ((64, 32), (128, 16), (256, 8), (512, 4)):
        for _ in range(2):
            macs += conv(cin, cout, 3, hw) + conv(cout, cout, 3, hw)
            norms += 2 * bn(cout, hw)
            if cin != cout:  # the projection shortcut: 1x1 conv and BatchNorm
                macs += conv(cin, cout, 1, hw)
                norms += bn(cout, hw)
            cin = cout
    macs += 512 * 10
    return macs + norms + (16 + 1) * 512, macs


def test_summary_counts_without_loading_data(tmp_path: Path) -> None:
    # dataset.data_file is null: loading CIFAR-10 would need a download, which this machine cannot do
    line = regbench("summary", "model=resnet18", "dataset=cifar10", cwd=tmp_path).stdout.strip().splitlines()[-1]
    info = json.loads(line)
    flops, macs = resnet18_cifar_counts()
    # trainable = total less BatchNorm's running mean and variance: 2 x (64 + 2*2*64 + (4+1)*(128+256+512)) = 9,600
    assert info == {"model": "resnet18", "act": "relu", "reg": "none", "dataset": "cifar10",
                    "input_shape": [1, 3, 32, 32], "total_params": 11183562, "trainable_params": 11183562 - 9600,
                    "flops": flops, "macs": macs}
    nndl = json.loads(regbench("summary", "model=resnet18_nndl", "dataset=mnist_nndl", cwd=tmp_path).stdout)
    assert (nndl["total_params"], nndl["flops"]) == (11185034, 35529728)


def test_train_on_mnist5k_writes_every_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = regbench("train", "trainer.max_steps=30", "trainer.eval_every_steps=15", f"hydra.run.dir={run}",
                    cwd=tmp_path)
    summary = assert_run_folder(run)
    assert summary["status"] == "completed" and summary["steps"] == 30
    assert (summary["model"], summary["dataset"], summary["total_params"]) == ("lenet5_nndl", "mnist5k", 61706)
    assert 0.5 < summary["test_acc"] <= 1.0  # 30 steps of LeNet on real digits is far above chance
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [15, 30]
    assert set(rows[0]) >= {"epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "train_time_s",
                            "train_img_per_s", "eval_time_s"}
    assert summary["best_val_acc"] == max(r["val_acc"] for r in rows)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_train_on_official_cifar_tarball(tmp_path: Path, cifar_tarball: Path) -> None:
    run = tmp_path / "run"
    regbench("train", "model=mynet", "dataset=cifar10", f"dataset.data_file={cifar_tarball}", "optim=adam",
             "dataset.val_size=100", "trainer.epochs=1", "trainer.batch_size=50", f"hydra.run.dir={run}", cwd=tmp_path)
    summary = assert_run_folder(run)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1 and summary["steps"] == 8
    assert 0 <= summary["test_acc"] <= 1  # the best-val checkpoint on the official test batch
    assert summary["total_params"] == 159498


@pytest.mark.slow
def test_default_run_folders_are_unique_per_microsecond(tmp_path: Path) -> None:
    regbench("train", "-m", "seed=0,1", "trainer.max_steps=3", "model=mynet", "dataset=synthetic",
             "dataset.train_size=64", "dataset.test_size=32", cwd=tmp_path)
    sweeps = list((tmp_path / "outputs" / "multirun").glob("*/*"))
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    assert [read_json(j / "summary.json")["seed"] for j in jobs] == [0, 1]
    assert all(read_json(j / "summary.json")["status"] == "completed" for j in jobs)
    assert all((j / "train.log").exists() for j in jobs)


@pytest.mark.slow
def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    # a constant lr: cutting a run with max_steps makes a cosine annealing end sooner
    common = ("model=mynet", "dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64",
              "trainer.epochs=2", "trainer.batch_size=32", "reg=none", "sched=constant")
    regbench("train", *common, f"hydra.run.dir={tmp_path / 'full'}", cwd=tmp_path)
    regbench("train", *common, "trainer.max_steps=8", f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path)
    first = read_jsonl(tmp_path / "cut" / "metrics.jsonl")
    assert [r["step"] for r in first] == [8]
    proc = regbench("train", *common, "trainer.resume=true", f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path)
    assert "resumed from" in proc.stdout + proc.stderr
    full, resumed = read_jsonl(tmp_path / "full" / "metrics.jsonl"), read_jsonl(tmp_path / "cut" / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [8, 16]
    assert [r["val_acc"] for r in resumed] == [r["val_acc"] for r in full]
    assert [r["val_loss"] for r in resumed] == [r["val_loss"] for r in full]
    # a completed run with the same config is not trained again
    again = regbench("train", *common, "trainer.resume=true", f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path)
    assert "already completed" in again.stdout + again.stderr


def test_unknown_model_is_one_line_without_traceback(tmp_path: Path) -> None:
    proc = regbench("train", "model=lenet7", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "lenet5_nndl" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_missing_data_file_is_one_line_and_says_how_to_fix(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = regbench("train", "dataset=cifar10", f"dataset.data_file={tmp_path / 'nope.tar.gz'}",
                    f"hydra.run.dir={run}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "nope.tar.gz" in out
    errors = [line for line in out.splitlines() if "ERROR" in line or "error" in line]
    assert len(errors) == 1
    assert read_json(run / "summary.json")["status"] == "failed"


@pytest.mark.parametrize("command", [["summary"], ["train", "trainer.max_steps=1"], ["bench"]])
def test_missing_paddle_is_named_in_one_line(tmp_path: Path, command: list[str]) -> None:
    blocker = tmp_path / "nopaddle"
    (blocker / "paddle").mkdir(parents=True)
    (blocker / "paddle" / "__init__.py").write_text("raise ImportError('no paddle here')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    proc = regbench(*command, cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and not (tmp_path / "outputs").exists()
    assert "paddlepaddle" in proc.stderr and "paddlepaddle-gpu" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_offline_cifar_names_the_official_archive_and_the_ways_around(tmp_path: Path) -> None:
    # an empty home (no cached download) and a proxy nobody listens on: the download fails at once, as offline
    dead = "http://127.0.0.1:9"
    env = {"HOME": str(tmp_path / "home"), "https_proxy": dead, "HTTPS_PROXY": dead, "http_proxy": dead,
           "HTTP_PROXY": dead, "no_proxy": "", "NO_PROXY": ""}
    proc = regbench("train", "model=mynet", "dataset=cifar10", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
                    env=env, check=False)
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    (error,) = [line for line in out.splitlines() if "ERROR" in line]
    for needed in ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "dataset.data_file=PATH",
                   "dataset=imagefolder"):
        assert needed in error
    assert "Traceback" not in out and "shared/data" not in out
