"""Trackers (logger=...): TensorBoard and VisualDL files read back with their own readers, MLflow through a real
`mlflow server`, trackers failing mid-run, resumed runs, missing packages."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import read_json, read_jsonl, regbench
from track_server import mlflow_server

TINY = ("model=lenet5", "dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64", "trainer.epochs=3",
        "trainer.batch_size=32", "trainer.eval_every_steps=4", "trainer.max_steps=12")


def scalar_rows(rows: list[dict]) -> dict[str, dict[int, float]]:
    """metrics.jsonl rows as {dashboard tag: {step: value}}, as the trackers name them."""
    from regbench.track import scalars

    out: dict[str, dict[int, float]] = {}
    for row in rows:
        for tag, value in scalars(row).items():
            out.setdefault(tag, {})[row["step"]] = value
    return out


def assert_close(logged: dict[str, dict[int, float]], rows: list[dict], rel: float = 1e-6) -> None:
    expected = scalar_rows(rows)
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "train/img_per_s"} <= set(expected)
    for tag, by_step in expected.items():
        assert sorted(logged[tag]) == sorted(by_step), tag
        for step, value in by_step.items():
            assert math.isclose(logged[tag][step], value, rel_tol=rel, abs_tol=1e-9), (tag, step)


def tensorboard_scalars(logdir: Path) -> tuple[dict[str, dict[int, float]], str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    logged = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        assert len({e.step for e in events}) == len(events), f"{tag} has repeated steps"
        logged[tag] = {e.step: e.value for e in events}
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    return logged, config


def test_tensorboard_and_visualdl_mirror_metrics_jsonl(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = regbench("train", *TINY, "logger=[tensorboard,visualdl]", f"hydra.run.dir={run}", cwd=tmp_path)
    assert "WARNING" not in proc.stdout + proc.stderr
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [4, 8, 12]
    logged, config = tensorboard_scalars(run / "tensorboard")
    assert_close(logged, rows)  # TensorBoard stores float32
    assert "regbench.models.lenet.LeNet5" in config and "train_size: 256" in config

    from visualdl import LogReader

    reader = LogReader(file_path=str(next((run / "visualdl").iterdir())))
    vdl = {tag: {int(r.id): r.value for r in reader.get_data("scalar", tag)} for tag in scalar_rows(rows)}
    assert_close(vdl, rows)
    assert "LeNet5" in reader.get_data("text", "config")[0].text.encoded_text_string


@pytest.mark.slow
def test_mlflow_sweep_runs_metrics_and_status_through_the_server(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # job 0 diverges (lr 1e6), job 1 completes: FAILED and FINISHED in MLflow
    proc = regbench("train", "-m", *TINY, "optim=sgd", "optim.lr=1e6,0.01", "logger=mlflow",
                    f"hydra.sweep.dir={sweep}", cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a job did not complete
    db = tmp_path / "outputs" / "mlflow.db"
    assert db.is_file()
    with mlflow_server(f"sqlite:///{db}", cwd=tmp_path) as server:
        experiments = server.post("experiments/search", {"max_results": 100})["experiments"]
        [experiment] = [e for e in experiments if e["name"] == str(sweep)]
        found = server.post("runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
        runs = {int(next(t["value"] for t in r["data"]["tags"] if t["key"] == "job_num")): r for r in found}
        assert sorted(runs) == [0, 1]
        for job, (status, summary_status) in enumerate((("FAILED", "diverged"), ("FINISHED", "completed"))):
            run = runs[job]
            folder = sweep / str(job)
            summary = read_json(folder / "summary.json")
            tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
            params = {p["key"]: p["value"] for p in run["data"]["params"]}
            assert run["info"]["status"] == status and summary["status"] == summary_status
            assert tags["status"] == summary_status and tags["config_hash"] == summary["config_hash"]
            assert tags["sweep_dir"] == str(sweep) and tags["run_dir"] == str(folder)
            assert read_json(folder / "mlflow.json")["run_id"] == run["info"]["run_id"]
            assert params["optim.lr"] == ("1000000.0" if job == 0 else "0.01") and params["choices.model"] == "lenet5"
            assert params["dataset.train_size"] == "256" and params["seed"] == "0"
            rows = read_jsonl(folder / "metrics.jsonl") if (folder / "metrics.jsonl").exists() else []
            history = server.get("metrics/get-history", run_id=run["info"]["run_id"], metric_key="val/acc")
            assert {m["step"]: m["value"] for m in history.get("metrics", [])} == {r["step"]: r["val_acc"] for r in rows}
            artifacts = server.get("artifacts/list", run_id=run["info"]["run_id"])
            names = {f["path"] for f in artifacts.get("files", [])}
            assert {"summary.json", "config"} <= names
        assert len(read_jsonl(sweep / "1" / "metrics.jsonl")) == 3


@pytest.mark.slow
def test_a_tracker_failing_mid_run_costs_one_warning_not_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", cwd=tmp_path) as server:
        proc = subprocess.Popen([sys.executable, "-m", "regbench", "train", *TINY, "trainer.max_steps=null",
                                 "dataset.train_size=512", "dataset.val_size=0", "logger=mlflow", f"logger.mlflow.tracking_uri={server.url}",
                                 f"hydra.run.dir={run}"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 300
        while not ((run / "metrics.jsonl").exists() and read_jsonl(run / "metrics.jsonl")):
            assert proc.poll() is None and time.time() < deadline, "no evaluation in time"
            time.sleep(0.05)
        server.kill()  # the tracking server goes away in the middle of training
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["steps"] == 48
    assert len(read_jsonl(run / "metrics.jsonl")) == 12
    warnings = [line for line in out.splitlines() if "WARNING" in line or "Traceback" in line]
    assert len(warnings) == 1 and "logger mlflow stopped" in warnings[0], out


@pytest.mark.slow
def test_resumed_run_continues_its_mlflow_run_and_tensorboard_history(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    run = tmp_path / "run"
    args = (*TINY, "trainer.max_steps=null", "dataset.train_size=512", "logger=[mlflow,tensorboard]",
            f"hydra.run.dir={run}")
    proc = subprocess.Popen([sys.executable, "-m", "regbench", "train", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not ((run / "metrics.jsonl").exists() and len(read_jsonl(run / "metrics.jsonl")) >= 2):
        assert proc.poll() is None and time.time() < deadline, "no evaluation in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    run_id = read_json(run / "mlflow.json")["run_id"]
    assert client.get_run(run_id).info.status == "KILLED"
    regbench("train", *args, "trainer.resume=true", cwd=tmp_path)
    assert read_json(run / "mlflow.json")["run_id"] == run_id
    mlflow_run = client.get_run(run_id)
    assert mlflow_run.info.status == "FINISHED" and mlflow_run.data.tags["status"] == "completed"
    rows = read_jsonl(run / "metrics.jsonl")
    assert len(rows) == 12
    history = client.get_metric_history(run_id, "val/acc")
    assert sorted(m.step for m in history) == [r["step"] for r in rows]  # each step once
    assert_close(tensorboard_scalars(run / "tensorboard")[0], rows)


@pytest.mark.slow
def test_a_failed_artifact_upload_still_ends_the_mlflow_run(tmp_path: Path) -> None:
    blocked = tmp_path / "artifacts"
    blocked.write_text("a file where the server's artifact folder should be\n")  # every upload fails on the server
    run = tmp_path / "run"
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path, "--artifacts-destination", str(blocked)) as server:
        proc = regbench("train", *TINY, "logger=mlflow", f"logger.mlflow.tracking_uri={server.url}",
                        "logger.mlflow.request_retries=0", f"hydra.run.dir={run}", cwd=tmp_path)
        mlflow_run = server.get("runs/get", run_id=read_json(run / "mlflow.json")["run_id"])["run"]
    tags = {t["key"]: t["value"] for t in mlflow_run["data"]["tags"]}
    assert mlflow_run["info"]["status"] == "FINISHED" and tags["status"] == "completed"
    assert read_json(run / "summary.json")["status"] == "completed"
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" in line or "Traceback" in line]
    assert len(warnings) == 1 and "logger mlflow stopped (closing failed" in warnings[0], warnings


@pytest.mark.slow
def test_a_run_resumed_from_another_directory_continues_its_mlflow_run(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    run = tmp_path / "run"
    args = (*TINY, "trainer.max_steps=null", "logger=mlflow", f"hydra.run.dir={run}")  # the default relative store
    regbench("train", *args, "trainer.epochs=1", cwd=first)
    run_id = read_json(run / "mlflow.json")["run_id"]
    regbench("train", *args, "trainer.epochs=2", "trainer.resume=true", cwd=second)
    assert read_json(run / "mlflow.json")["run_id"] == run_id
    assert not (second / "outputs").exists()  # no store of its own in the second working directory
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [4, 8, 12, 16]
    with mlflow_server(f"sqlite:///{first / 'outputs' / 'mlflow.db'}", cwd=tmp_path) as server:
        [mlflow_run] = server.post("runs/search", {"experiment_ids": ["0", "1"]})["runs"]
        history = server.get("metrics/get-history", run_id=run_id, metric_key="val/acc")["metrics"]
    tags = {t["key"]: t["value"] for t in mlflow_run["data"]["tags"]}
    assert mlflow_run["info"]["run_id"] == run_id
    assert mlflow_run["info"]["status"] == "FINISHED" and tags["status"] == "completed"
    assert sorted(m["step"] for m in history) == [r["step"] for r in rows]


def test_a_tracker_without_its_package_is_one_line_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    (blocker / "tensorboardX").mkdir(parents=True)
    (blocker / "tensorboardX" / "__init__.py").write_text("raise ImportError('no tensorboardX here')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    proc = regbench("train", *TINY, "logger=[mlflow,tensorboard]", f"hydra.run.dir={tmp_path / 'run'}",
                    cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "regbench: error: logger=tensorboard needs the tensorboardX package: pip install 'regbench[track]' "
        "(or pip install tensorboardX)"]
    assert not (tmp_path / "run").exists()
