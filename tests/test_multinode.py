"""Data parallel over two machines: two paddle.distributed.launch processes on this one, started apart as two nodes
(--nnodes 2 --master --rank, gloo on the CPU), trained, preempted and resumed; and the SLURM script's commands."""
from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from conftest import REPO, read_json, read_jsonl
from test_distributed import launch_training

pytestmark = pytest.mark.all_cores  # several training processes at once, as on a machine of their own

REGBENCH = Path(sys.executable).parent / "regbench"  # the console script, as a user names it: launch takes no -m
SLOW_STEPS = Path(__file__).with_name("slow_steps.py")  # regbench with steps slowed by a sleep (test-only)
# the two "nodes" run on one machine: one thread each keeps them off each other's cores, and makes a node's sums
# those of a single-host rank, whose ranks share the machine's cores
SMALL = ("model=mynet", "dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64", "trainer.batch_size=32",
         "trainer.threads=1")
TIMING = {"train_time_s", "train_img_per_s", "eval_time_s"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, at any depth (the launcher starts each worker in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def signal_node(launcher: subprocess.Popen, signum: int) -> None:
    """`signum` to every process of a node (its launcher and workers), as a preemption or a shutdown sends it."""
    for pid in [launcher.pid, *descendants(launcher.pid)]:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


@pytest.fixture
def nodes() -> Iterator[list[subprocess.Popen]]:
    """The launchers a test starts; whatever of them and their workers is still running at its end is killed."""
    started: list[subprocess.Popen] = []
    yield started
    for launcher in started:
        if launcher.poll() is None:
            signal_node(launcher, signal.SIGKILL)
            launcher.wait()


def launch_nodes(nodes: list[subprocess.Popen], logs: Path, *args: str, run_dirs: tuple[Path, Path],
                 program: tuple[str, ...] = (str(REGBENCH),)) -> list[subprocess.Popen]:
    """`regbench train ARGS` (`program` train ARGS) on two nodes, each started on its own: node n trains in
    `run_dirs[n]`, its launcher logs to `logs`/noden (its workers' logs) and `logs`/noden.out (its own output)."""
    master = f"127.0.0.1:{free_port()}"
    logs.mkdir(exist_ok=True)
    for rank, run in enumerate(run_dirs):
        with open(logs / f"node{rank}.out", "a") as out:
            nodes.append(subprocess.Popen(
                [sys.executable, "-m", "paddle.distributed.launch", "--nnodes", "2", "--master", master, "--rank",
                 str(rank), "--nproc_per_node", "1", "--log_dir", str(logs / f"node{rank}"), *program, "train",
                 *args, f"hydra.run.dir={run}"],
                cwd=logs.parent, stdout=out, stderr=subprocess.STDOUT))
    return nodes[-2:]


def finish(launchers: list[subprocess.Popen], timeout: float = 600) -> list[int]:
    """Each launcher's exit code once both have exited (the test's end kills them when they do not)."""
    deadline = time.time() + timeout
    for launcher in launchers:
        launcher.wait(timeout=max(1.0, deadline - time.time()))
    return [launcher.returncode for launcher in launchers]


def wait_for_an_evaluation(run: Path, launchers: list[subprocess.Popen], logs: Path) -> None:
    """Until rank 0 has written the run's first metrics row: training is under way on both nodes."""
    deadline = time.time() + 300
    while not ((run / "metrics.jsonl").exists() and read_jsonl(run / "metrics.jsonl")):
        assert time.time() < deadline and all(p.poll() is None for p in launchers), all_logs(logs)
        time.sleep(0.05)


def stop_steps(logs: Path) -> list[list[str]]:
    """The steps after which each node's worker says it stopped on SIGTERM."""
    return [re.findall(r"stopped by signal 15 at a checkpoint at step (\d+)", worker_log(logs, n)) for n in (0, 1)]


def worker_log(logs: Path, node: int) -> str:
    return (logs / f"node{node}" / "workerlog.0").read_text()


def all_logs(logs: Path) -> str:
    """The launchers' output, which holds their workers' too (for a failing test's message)."""
    return "\n".join(p.read_text() for p in sorted(logs.glob("node*.out")))


def assert_same_run(run: Path, reference: Path) -> None:
    """The same training to the last bit: every metrics row but its timings, the summary, the last checkpoint."""
    rows, expected = read_jsonl(run / "metrics.jsonl"), read_jsonl(reference / "metrics.jsonl")
    assert [{k: v for k, v in r.items() if k not in TIMING | {"lr"}} for r in rows] == [
        {k: v for k, v in r.items() if k not in TIMING | {"lr"}} for r in expected]
    # a resumed schedule recomputes its float64 rate in closed form at the checkpoint's step, where an uninterrupted
    # one went step by step: the logged rate may differ in its last digit, the float32 one the optimizer uses not
    assert [r["lr"] for r in rows] == pytest.approx([r["lr"] for r in expected], rel=1e-14)
    summary, expected_summary = read_json(run / "summary.json"), read_json(reference / "summary.json")
    assert {k: v for k, v in summary.items() if k != "wall_time_s"} == {
        k: v for k, v in expected_summary.items() if k != "wall_time_s"}
    with np.load(run / "checkpoints" / "last.npz") as a, np.load(reference / "checkpoints" / "last.npz") as b:
        assert a.files == b.files
        for key in set(a.files) - {"__meta__"}:  # its history holds the timings; the rows were compared above
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_two_nodes_train_as_the_two_ranks_of_one_host_do(tmp_path: Path, nodes: list[subprocess.Popen]) -> None:
    run, logs = tmp_path / "run", tmp_path / "logs"
    args = (*SMALL, "trainer.epochs=2")
    launch_nodes(nodes, logs, *args, run_dirs=(run, run))
    assert finish(nodes) == [0, 0], all_logs(logs)
    summary = read_json(run / "summary.json")
    assert (summary["status"], summary["world_size"], summary["steps"]) == ("completed", 2, 8)
    assert "rank 0 of 2" in (run / "train.log").read_text()
    assert "rank 1 of 2" in worker_log(logs, 1)
    single = tmp_path / "single"
    launch_training(tmp_path, single, *args)  # --nnodes 1 --nproc_per_node 2
    assert_same_run(run, single)


@pytest.mark.slow
def test_a_run_folder_that_one_node_does_not_see_is_refused_on_both(tmp_path: Path,
                                                                   nodes: list[subprocess.Popen]) -> None:
    # node 1 names a folder rank 0 never writes to: what a run folder outside a shared filesystem looks like to it
    logs = tmp_path / "logs"
    launch_nodes(nodes, logs, *SMALL, "trainer.epochs=1", run_dirs=(tmp_path / "run", tmp_path / "elsewhere"))
    assert finish(nodes) == [2, 2], all_logs(logs)
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "failed" and summary["steps"] == 0
    assert re.match(r"data parallel: rank\(s\) 1 do not see the run folder .*run that rank 0 writes .* a filesystem "
                    r"every node mounts at the same path", summary["error"]), summary["error"]
    assert "rank(s) 1 do not see the run folder" in worker_log(logs, 1)
    assert "Traceback" not in worker_log(logs, 0) + worker_log(logs, 1)
    assert not list((tmp_path / "run").glob(".shared-*"))  # the probe is gone


@pytest.mark.slow
def test_sigterm_to_one_node_stops_both_after_the_same_step_and_both_resume(tmp_path: Path,
                                                                          nodes: list[subprocess.Popen]) -> None:
    run, logs = tmp_path / "run", tmp_path / "logs"
    # stop_check_s=0: the ranks agree after every step, so that the stop comes before the run's end however fast its
    # steps are (the default's agreements, about every second, are tested with slow steps below)
    args = (*SMALL, "trainer.epochs=8", "trainer.eval_every_steps=4", "trainer.log_every=3", "trainer.stop_check_s=0")
    launch_nodes(nodes, logs, *args, run_dirs=(run, run))
    wait_for_an_evaluation(run, nodes, logs)
    # node 1 is preempted: its launcher and its worker get SIGTERM, and the launcher sends its worker three more
    signal_node(nodes[1], signal.SIGTERM)
    # node 0's launcher passes on its worker's 143; Paddle's launcher that got the signal exits with its number
    assert finish(nodes) == [143, 15], all_logs(logs)
    steps = stop_steps(logs)
    assert steps[0] and steps[0] == steps[1], all_logs(logs)  # both ranks, after the same step
    step = int(steps[0][0])
    assert 4 <= step < 32  # 4 steps per epoch, 8 epochs
    assert "code 143" in (logs / "node0.out").read_text()  # node 0's worker exited as a stopped run does
    summary = read_json(run / "summary.json")
    assert summary["status"] == "interrupted" and f"at step {step}" in summary["error"]
    with np.load(run / "checkpoints" / "last.npz", allow_pickle=False) as ckpt:
        assert json.loads(str(ckpt["__meta__"]))["trainer"]["step"] == step  # rank 0 wrote it after that step
    resumed = launch_nodes(nodes, logs, *args, "trainer.resume=true", run_dirs=(run, run))
    assert finish(resumed) == [0, 0], all_logs(logs)
    assert f"resumed from {run / 'checkpoints' / 'last.npz'} at step {step}" in (run / "train.log").read_text()
    uninterrupted = tmp_path / "uninterrupted"
    launch_training(tmp_path, uninterrupted, *args)
    assert_same_run(run, uninterrupted)


@pytest.mark.slow
def test_sigterm_during_slow_steps_stops_both_nodes_checkpointed_within_seconds(tmp_path: Path,
                                                                             nodes: list[subprocess.Popen]) -> None:
    # every step sleeps 0.3 s first: the ranks (default trainer.stop_check_s, 1 s) agree every 2 or 3 steps, and the
    # checkpoint came 1 s after the signal here. Agreeing every trainer.log_every steps (50), as they did, it came 26 s
    # after, and never with steps slowed by 1 s: Paddle's launcher kills its workers 30 s after it is stopped
    run, logs = tmp_path / "run", tmp_path / "logs"
    launch_nodes(nodes, logs, *SMALL, "trainer.epochs=100", run_dirs=(run, run), program=(str(SLOW_STEPS), "0.3"))
    wait_for_an_evaluation(run, nodes, logs)
    signalled = time.time()
    signal_node(nodes[1], signal.SIGTERM)
    assert finish(nodes) == [143, 15], all_logs(logs)
    steps = stop_steps(logs)
    assert steps[0] and steps[0] == steps[1], all_logs(logs)  # both ranks, after the same step
    last = run / "checkpoints" / "last.npz"
    with np.load(last, allow_pickle=False) as ckpt:
        assert json.loads(str(ckpt["__meta__"]))["trainer"]["step"] == int(steps[0][0])
    delay = last.stat().st_mtime - signalled
    assert 0 < delay < 10, f"the checkpoint was written {delay:.1f} s after SIGTERM\n" + all_logs(logs)


# stand-ins for the two SLURM commands the script calls, as SLURM runs them on a 2-node allocation whose hosts are
# both this machine: srun starts its command once per node, in parallel, with that node's variables
SCONTROL = """#!/bin/sh
[ "$1 $2" = "show hostnames" ] && echo "$3" | tr , '\\n'
"""
SRUN = """#!/usr/bin/env bash
while [[ $1 == --* ]]; do shift; done
mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
for node in "${!hosts[@]}"; do
    SLURM_NODEID=$node SLURM_PROCID=$node SLURM_LOCALID=0 SLURMD_NODENAME=${hosts[$node]} "$@" > "task$node.out" 2>&1 &
done
code=0
for job in $(jobs -p); do wait "$job" || code=$?; done
exit $code
"""


def launcher_settings(output: str) -> dict[str, str]:
    """The settings Paddle's launcher prints as it starts: its command line, as it understood it."""
    return dict(re.findall(r"^LAUNCH INFO [\d-]+ [\d:,]+ (\w+): (.*)$", output, re.MULTILINE))


@pytest.mark.slow
def test_the_slurm_script_starts_one_launcher_per_node_that_train_one_run(tmp_path: Path) -> None:
    stand_ins = tmp_path / "slurm-bin"
    stand_ins.mkdir()
    for name, text in (("scontrol", SCONTROL), ("srun", SRUN)):
        (stand_ins / name).write_text(text)
        (stand_ins / name).chmod(0o755)
    port = free_port()
    env = {**os.environ, "PATH": os.pathsep.join([str(stand_ins), str(REGBENCH.parent), os.environ["PATH"]]),
           "SLURM_JOB_NODELIST": "localhost,localhost", "SLURM_NNODES": "2", "SLURM_JOB_ID": "4242",
           "SLURM_CPUS_PER_TASK": "1", "REGBENCH_MASTER_PORT": str(port)}
    script = REPO / "scripts" / "slurm_multinode.sbatch"
    proc = subprocess.run(["bash", str(script), "runs/dp", *SMALL, "trainer.epochs=1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    outputs = [(tmp_path / f"task{n}.out").read_text() for n in (0, 1)]
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\n".join(outputs)
    run = tmp_path / "runs" / "dp"
    for node, output in enumerate(outputs):
        settings = launcher_settings(output)
        assert settings["master"] == f"127.0.0.1:{port}"  # the first host's address
        assert (settings["nnodes"], settings["rank"], settings["nproc_per_node"]) == ("2", str(node), "1")
        assert settings["host"] == "127.0.0.1"
        assert settings["training_script"] == str(REGBENCH)
        assert ast.literal_eval(settings["training_script_args"]) == ["train", f"hydra.run.dir={run}", *SMALL,
                                                         "trainer.epochs=1"]
        assert settings["log_dir"] == f"{run}.launch/node{node}"
    summary = read_json(run / "summary.json")
    assert (summary["status"], summary["world_size"]) == ("completed", 2)
    assert "rank 1 of 2" in (tmp_path / "runs" / "dp.launch" / "node1" / "workerlog.0").read_text()
