"""How many CPU threads a job's kernels get: `trainer.threads`, where `auto` is the job's share of the cores."""
from __future__ import annotations

import os
from typing import Any, Mapping

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


def resolve(trainer: DictConfig) -> int:
    """trainer.threads as a number: itself, or for `auto` this job's share of the cores (share_of_cores), at most
    trainer.auto_threads_max."""
    if trainer.threads != "auto":
        return int(trainer.threads)
    return max(1, min(trainer.auto_threads_max, share_of_cores(_launcher())))


def workers(trainer: DictConfig) -> int:
    """trainer.num_workers as a number: itself, or for `auto` this job's share of the cores (share_of_cores)."""
    if trainer.num_workers != "auto":
        return int(trainer.num_workers)
    return max(1, share_of_cores(_launcher()))


def _launcher() -> Mapping[str, Any]:
    """The Hydra launcher's config of this job ({} outside Hydra)."""
    return HydraConfig.get().launcher if HydraConfig.initialized() else {}


def share_of_cores(launcher: Mapping[str, Any]) -> int:
    """The cores this process may run on, divided by the processes that share them at once: the jobs a joblib
    launcher runs in parallel (`n_jobs`; negative counts back from the cores, as joblib does) and the data-parallel
    ranks on this machine. A submitit launcher gives each job `cpus_per_task` cores (on SLURM the affinity shows it)."""
    cores = available_cores()
    n_jobs = launcher.get("n_jobs")
    jobs = 1 if not isinstance(n_jobs, int) or n_jobs == 0 else n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    share = cores // (jobs * int(os.environ.get("PADDLE_LOCAL_SIZE", "1")))
    cpus_per_task = launcher.get("cpus_per_task")
    return min(share, cpus_per_task) if isinstance(cpus_per_task, int) and cpus_per_task > 0 else share


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, cgroup cpusets, a SLURM allocation) where the
    system has one, else every core; inside a SLURM task at most the CPUs it was given."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cores, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else cores
