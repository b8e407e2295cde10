"""Data-parallel training: sharding of every epoch, and a real two-process run on the CPU (gloo) via Paddle's launcher."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ece_by_loop, read_json, read_jsonl, regbench
from regbench.data.batches import BatchLoader
from regbench.data.splits import Split
from regbench.train.stop import next_agreement

pytestmark = pytest.mark.all_cores  # several training processes at once, as on a machine of their own


def loader(n: int, rank: int, world: int, even: bool, batch_size: int = 4) -> BatchLoader:
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, axis=2).repeat(2, axis=3)
    return BatchLoader(Split(images, np.arange(n, dtype=np.int64)), batch_size, [0.0], [1.0 / 255], crop_padding=0,
                       resized_crop_scale=[0.08, 1.0], shard=(rank, world), even_shards=even)


def labels_of(shard: BatchLoader, seed: int | None) -> list[int]:
    return [int(v) for _, y in shard.epoch(seed=seed) for v in y.numpy()]


def test_training_shards_are_disjoint_equal_and_follow_the_epoch_order() -> None:
    shards = [loader(23, r, 3, even=True) for r in range(3)]
    assert {s.num_batches for s in shards} == {2}  # 23 // 3 = 7 samples each: all ranks take the same steps
    seen = [labels_of(s, seed=5) for s in shards]
    assert all(len(s) == 7 for s in seen)
    assert not set(seen[0]) & set(seen[1]) and not set(seen[1]) & set(seen[2])
    order = np.random.default_rng([5, 0]).permutation(23)
    assert seen[1] == list(order[1::3][:7])
    assert labels_of(shards[0], seed=6) != seen[0]  # a new epoch, a new order


def test_evaluation_shards_cover_every_sample_once() -> None:
    seen = [labels_of(loader(23, r, 3, even=False), seed=None) for r in range(3)]
    assert sorted(v for s in seen for v in s) == list(range(23))


def test_the_ranks_agree_about_every_stop_check_s_seconds_and_at_least_one_step_apart() -> None:
    # (step, seconds per step, stop_check_s) -> the next agreement's step, worked out by hand
    cases = {(10, 0.3, 1.0): 13, (10, 0.25, 1.0): 14, (10, 0.26, 1.0): 13, (10, 0.004, 1.0): 260,
             (10, 2.5, 1.0): 11, (10, 0.3, 0.0): 11, (7, 1.0, 30.0): 37}
    assert {case: next_agreement(*case) for case in cases} == cases


def launch_training(tmp_path: Path, run: Path, *overrides: str) -> None:
    """`regbench train OVERRIDES` as two data-parallel ranks on the CPU (gloo) under Paddle's launcher, run in `run`."""
    script = Path(sys.executable).parent / "regbench"
    proc = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nnodes", "1", "--nproc_per_node", "2",
         "--log_dir", str(tmp_path / "launch"), str(script), "train", *overrides, f"hydra.run.dir={run}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    logs = "\n".join(p.read_text() for p in sorted((tmp_path / "launch").glob("workerlog.*")))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs


@pytest.mark.slow
def test_two_process_data_parallel_run_on_cpu(tmp_path: Path) -> None:
    run = tmp_path / "run"
    launch_training(tmp_path, run, "model=mynet", "dataset=synthetic", "dataset.train_size=256",
                    "dataset.test_size=64", "trainer.batch_size=32", "trainer.epochs=2")
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["world_size"] == 2
    # each rank takes 128 of the 256 images per epoch: 4 steps of 32, the same on both ranks
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [4, 8]
    assert summary["steps"] == 8 and (run / "checkpoints" / "best.npz").exists()
    # only rank 0 wrote: one run folder, one log, and nothing else appeared beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["launch", "run"]
    assert "rank 0 of 2" in (run / "train.log").read_text()
    # each evaluation pooled both ranks' shards of val: one process scoring the same weights gets the same figures,
    # ECE included, whose per-bin sums were summed over the ranks (the mean of the ranks' own ECEs is another figure)
    row = read_jsonl(run / "metrics.jsonl")[-1]
    out = json.loads(regbench("eval", str(run), "--split", "val", "--checkpoint", "last", "--save-probs",
                              str(tmp_path / "val.npz")).stdout.splitlines()[-1])
    assert [out[k] for k in ("accuracy", "ece", "nll", "brier")] == pytest.approx(
        [row[f"val_{k}"] for k in ("acc", "ece", "nll", "brier")], abs=1e-6)
    with np.load(tmp_path / "val.npz") as saved:
        probs, labels = saved["probs"], saved["labels"]
    per_rank = np.mean([ece_by_loop(probs[r::2], labels[r::2]) for r in (0, 1)])  # rank r's shard: samples r::2
    assert abs(per_rank - row["val_ece"]) > 1e-3


@pytest.mark.slow
def test_data_parallel_figures_are_those_of_the_saved_checkpoints_batch_norm_statistics_included(
        tmp_path: Path) -> None:
    # each rank's batch norms average their own shard's batches into their running statistics; the checkpoints hold
    # rank 0's, and every evaluation must score with them, not with each rank's own (scoring with their own, this
    # run recorded a best val_acc of 0.7266 and a final_test_acc of 0.7461 where its checkpoints score 0.7344, 0.7617)
    run = tmp_path / "run"
    launch_training(tmp_path, run, "model=resnet18_nndl", "dataset=mnist5k", "dataset.limit.train=1024",
                    "dataset.limit.val=256", "dataset.limit.test=256", "trainer.epochs=2", "optim=adam",
                    "optim.lr=1e-3")
    with np.load(run / "checkpoints" / "best.npz") as ckpt:
        assert any(k.endswith("._mean") for k in ckpt.files)  # the model has batch norms
    summary = read_json(run / "summary.json")

    def accuracy(split: str, checkpoint: str) -> float:
        out = regbench("eval", str(run), "--split", split, "--checkpoint", checkpoint).stdout.splitlines()[-1]
        return json.loads(out)["accuracy"]

    assert accuracy("val", "best") == summary["best_val_acc"]
    assert accuracy("test", "best") == summary["test_acc"]
    assert accuracy("test", "last") == summary["final_test_acc"]


def start_ranks(args: list[str], cwd: Path, world: int = 2) -> list[subprocess.Popen]:
    """`regbench ARGS` as `world` data-parallel ranks on the CPU (gloo), each started with the environment
    paddle.distributed.launch gives it, but without the launcher, so that each rank's exit code is its own."""
    sockets = [socket.socket() for _ in range(world + 1)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    master, *ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    endpoints = ",".join(f"127.0.0.1:{p}" for p in ports)
    procs = []
    for rank in range(world):
        env = {**os.environ, "PADDLE_MASTER": f"127.0.0.1:{master}", "PADDLE_NNODES": "1",
               "PADDLE_GLOBAL_SIZE": str(world), "PADDLE_LOCAL_SIZE": str(world), "PADDLE_TRAINERS_NUM": str(world),
               "PADDLE_GLOBAL_RANK": str(rank), "PADDLE_LOCAL_RANK": str(rank), "PADDLE_RANK_IN_NODE": str(rank),
               "PADDLE_TRAINER_ID": str(rank), "PADDLE_TRAINER_ENDPOINTS": endpoints,
               "PADDLE_CURRENT_ENDPOINT": f"127.0.0.1:{ports[rank]}", "PADDLE_DISTRI_BACKEND": "gloo"}
        procs.append(subprocess.Popen([sys.executable, "-m", "regbench", *args], cwd=cwd, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return procs


def finish(procs: list[subprocess.Popen], timeout: float) -> list[str]:
    """Each rank's output once all have exited; a test failure (and no stray process) when they hang."""
    try:
        return [p.communicate(timeout=timeout)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("the ranks did not stop:\n" + "\n".join(p.communicate()[0] for p in procs))


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_every_rank_after_the_same_step_and_the_run_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "model=mynet", "dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64",
            "trainer.batch_size=32", "trainer.epochs=8", "trainer.eval_every_steps=4", "trainer.log_every=3",
            "trainer.stop_check_s=0", f"hydra.run.dir={run}"]  # agree after every step: stopped before the end
    ranks = start_ranks(args, tmp_path)
    deadline = time.time() + 300
    while not ((run / "metrics.jsonl").exists() and read_jsonl(run / "metrics.jsonl")):
        assert time.time() < deadline and all(p.poll() is None for p in ranks), finish(ranks, 60)
        time.sleep(0.05)
    # rank 1 only: rank 0 learns of it from the others. Sent again until rank 1 exits, as senders repeat it (Paddle's
    # launcher sends three): a repeated SIGTERM is the same request, also once rank 1 has stopped and waits for rank 0
    deadline = time.time() + 120
    while ranks[1].poll() is None and time.time() < deadline:
        ranks[1].send_signal(signal.SIGTERM)
        time.sleep(0.05)
    outputs = finish(ranks, timeout=120)
    assert [p.returncode for p in ranks] == [143, 143], outputs
    steps = [re.findall(r"stopped by signal 15 at a checkpoint at step (\d+)", out) for out in outputs]
    assert steps[0] and steps[0][:1] == steps[1][:1], outputs  # the same step on both ranks
    step = int(steps[0][0])
    assert 4 <= step < 32  # 4 steps per epoch on each rank (128 images of 256), 8 epochs
    with np.load(run / "checkpoints" / "last.npz", allow_pickle=False) as ckpt:
        assert json.loads(str(ckpt["__meta__"]))["trainer"]["step"] == step  # rank 0 wrote it after that step
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.npz", "last.npz"]
    summary = read_json(run / "summary.json")
    assert summary["status"] == "interrupted" and f"at step {step}" in summary["error"]
    outputs = finish(start_ranks([*args, "trainer.resume=true"], tmp_path), timeout=600)
    summary = read_json(run / "summary.json")
    assert (summary["status"], summary["steps"]) == ("completed", 32), outputs
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == list(range(4, 33, 4))
