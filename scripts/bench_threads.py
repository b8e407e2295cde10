"""Training throughput with trainer.threads = 1, 2 and auto, alone and beside one other identical job, with the OpenMP
runtimes' default waiting and with passive waiting; prints a Markdown table (docs/performance.md, "Threads").

    python scripts/bench_threads.py [--rounds 3] [--steps 30] [--model mynet] [--batch 64]

Every measurement is `regbench bench` in fresh processes (thread counts and the OpenMP settings are fixed when
Paddle loads). "beside another job" starts two identical processes at once and gives each one's throughput and their
sum; "joblib sweep" is one `regbench bench -m` of two jobs on hydra/launcher=joblib (n_jobs=2), where auto gives each
job its share of the cores. Passive waiting is OMP_WAIT_POLICY=PASSIVE (GNU and Intel OpenMP) plus KMP_BLOCKTIME=0
(Intel OpenMP, which runs Paddle's MKL): a thread that waits for work sleeps instead of spinning on its core.
CPU/wall is the CPU time of the variant's processes over its wall time (startup included): how many cores were
busy on average; threads spinning while they wait drive it up.
The variants take turns for --rounds rounds, so that other work on the machine weighs on all of them alike; figures
are the median over rounds with the min–max.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


@dataclass
class Variant:
    threads: str
    waiting: str  # default | passive
    load: str  # alone | beside another job | joblib sweep

    @property
    def env(self) -> dict[str, str]:
        return PASSIVE if self.waiting == "passive" else {}


def variants() -> list[Variant]:
    out = [Variant(threads, waiting, load) for load in ("alone", "beside another job")
           for threads in ("1", "2", "auto") for waiting in ("default", "passive")]
    return out + [Variant("auto", waiting, "joblib sweep") for waiting in ("default", "passive")]


def run(variant: Variant, args: argparse.Namespace) -> list[dict]:
    """The `regbench bench` figures of each job the variant runs."""
    command = [sys.executable, "-m", "regbench", "bench"]
    overrides = [f"model={args.model}", "dataset=synthetic", f"trainer.batch_size={args.batch}",
                 f"trainer.threads={variant.threads}", f"bench.steps={args.steps}", "bench.warmup=3",
                 "bench.eval_repeats=1", "hydra.run.dir=.", "hydra.sweep.dir=."]
    env = {**os.environ, **variant.env}
    for key in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME"):
        if key not in variant.env:
            env.pop(key, None)
    if variant.load == "joblib sweep":
        commands = [[*command, "-m", *overrides, "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]]
    else:
        commands = [[*command, *overrides]] * (2 if variant.load == "beside another job" else 1)
    procs = [subprocess.Popen(c, cwd=args.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    jobs = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"{' '.join(proc.args)} failed:\n{err}")
        jobs += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    parser.add_argument("--model", default="mynet")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    import tempfile

    all_variants = variants()
    figures: dict[int, list[list[dict]]] = {i: [] for i in range(len(all_variants))}
    ratios: dict[int, list[float]] = {i: [] for i in range(len(all_variants))}
    with tempfile.TemporaryDirectory() as workdir:
        args.workdir = workdir
        for r in range(args.rounds):
            for i, variant in enumerate(all_variants):
                before = _children_cpu()
                start = time.perf_counter()
                figures[i].append(run(variant, args))
                ratios[i].append((_children_cpu() - before) / (time.perf_counter() - start))
                print(f"round {r + 1}/{args.rounds}: {variant} done", file=sys.stderr, flush=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.model}, batch {args.batch}, {args.steps} timed steps, {args.rounds} rounds, {cores} cores "
          f"this process may use\n")
    print("| trainer.threads | OpenMP waiting | jobs | threads in effect | img/s per job | img/s all jobs | CPU/wall |")
    print("|---|---|---|---:|---:|---:|---:|")
    for i, variant in enumerate(all_variants):
        per_job = [j["train_img_per_s"] for jobs in figures[i] for j in jobs]
        total = [sum(j["train_img_per_s"] for j in jobs) for jobs in figures[i]]
        threads = sorted({j["threads"] for jobs in figures[i] for j in jobs})
        print(f"| {variant.threads} | {variant.waiting} | {variant.load} | {'/'.join(map(str, threads))} "
              f"| {_spread(per_job)} | {_spread(total)} | {statistics.median(ratios[i]):.2f} |")


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}–{max(values):,.0f}]"


if __name__ == "__main__":
    main()
