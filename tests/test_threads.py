"""trainer.threads=auto: the cores a job may run on, shared among the jobs that run at once; a number sets it exactly."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ALL_CORES, regbench
from regbench.train.threads import available_cores, share_of_cores

CORES = ALL_CORES  # the session's, not only an xdist worker's share
MAX = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "trainer" / "default.yaml").auto_threads_max
TINY = ("model=lenet5", "dataset=synthetic", "dataset.train_size=64", "dataset.test_size=32", "trainer.batch_size=32",
        "trainer.max_steps=1")


def mkl_threads(stdout: str) -> set[str]:
    """The thread counts MKL reports for its GEMMs (MKL_VERBOSE=1 prints one line per call)."""
    return set(re.findall(r"NThr:(\d+)", stdout))


@pytest.mark.slow
@pytest.mark.all_cores
@pytest.mark.parametrize("cpus", [CORES[:1], CORES], ids=["one core", "every core"])
def test_auto_uses_the_cores_the_process_may_run_on(tmp_path: Path, cpus: list[int]) -> None:
    # like `taskset -c`: the affinity the CLI is started with, which its children inherit
    proc = subprocess.run([sys.executable, "-m", "regbench", "train", *TINY, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "MKL_VERBOSE": "1"},
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mkl_threads(proc.stdout) == {str(min(len(cpus), MAX))}
    assert f"CPU threads: {min(len(cpus), MAX)} (trainer.threads=auto)" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.slow
@pytest.mark.all_cores
def test_auto_divides_the_cores_among_the_jobs_joblib_runs_at_once(tmp_path: Path, n_jobs: int) -> None:
    proc = regbench("train", "-m", *TINY, "seed=0,1", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, env={"MKL_VERBOSE": "1"})
    assert mkl_threads(proc.stdout) == {str(max(1, min(len(CORES) // n_jobs, MAX)))}


@pytest.mark.parametrize("value", ["0", "many", "1.5"])
def test_threads_is_auto_or_a_positive_integer(tmp_path: Path, value: str) -> None:
    proc = regbench("train", f"trainer.threads={value}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "it must be auto or an integer >= 1" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("launcher, env, expected", [
    ({}, {}, 16),                                            # the basic launcher: one job at a time
    ({"n_jobs": 4}, {}, 4),                                  # joblib, 4 jobs at once
    ({"n_jobs": 3}, {}, 5),                                  # 16 // 3
    ({"n_jobs": -1}, {}, 1),                                 # joblib's default: as many jobs as cores
    ({"n_jobs": -3}, {}, 1),                                 # 14 jobs
    ({"n_jobs": 32}, {}, 0),                                 # more jobs than cores (resolve makes it 1)
    ({"cpus_per_task": 6}, {}, 6),                           # submitit: the job's own CPUs
    ({}, {"PADDLE_LOCAL_SIZE": "2"}, 8),                     # two data-parallel ranks on this machine
    ({}, {"SLURM_CPUS_PER_TASK": "3"}, 3),                   # inside a SLURM task
])
def test_share_of_cores(monkeypatch: pytest.MonkeyPatch, launcher: dict, env: dict, expected: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    for key in ("PADDLE_LOCAL_SIZE", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert share_of_cores(launcher) == expected


def test_available_cores_without_affinity_is_the_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert available_cores() == os.cpu_count()
