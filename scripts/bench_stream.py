"""Streamed against in-memory image folders: the training process's peak memory and the share of a step spent
waiting for data; prints a Markdown table (docs/performance.md, "Streamed image folders").

    python scripts/bench_stream.py [--dir DIR] [--sizes 5000,20000] [--steps 20] [--image-size 64] [--batch 64]

Writes folders of N JPEGs at 96 px in the ImageNet layout (train/<wnid>/*.JPEG, 10 classes, and a val/ of N/20;
kept in DIR for the next run), then for each size runs `regbench bench` (fresh processes, dataset=imagenette, the
ImageNet transforms at --image-size, mynet) streamed with 1 and 2 reader processes (trainer.num_workers) and in
memory. Per case: the trainer's max RSS (getrusage(RUSAGE_SELF), as `regbench bench` reports it); the peak memory
of the trainer and its reader processes together, sampled every 0.2 s from /proc (Linux) as the sum of their PSS,
which counts pages the forked readers share with the trainer once (RUSAGE_CHILDREN does not serve: it counts only
children already waited for, and Paddle's import leaves one of its own); the time a step waited for its batch over
the step's time (data wait); the median step; the median time to produce a batch alone. The cache of decoded
images goes to a temporary folder, so every in-memory case decodes."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = 10
SIDE = 96


def write_folder(root: Path, n: int) -> Path:
    """n training JPEGs (and n/20 val ones) of SIDE px in the ImageNet layout: smooth class-coloured images with
    noise, a few kB each, as photos of that size are; kept when already complete."""
    done = root / "complete"
    if done.exists():
        return root
    rng = np.random.default_rng(n)
    ramp = np.linspace(0, 1, SIDE)[None, :, None]
    for split, count in (("train", n), ("val", n // 20)):
        for i in range(count):
            c = i % CLASSES
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            base = rng.uniform(0, 255, 3) * (1 - ramp) + np.array([25.0 * c, 128, 255 - 25.0 * c]) * ramp
            pixels = np.clip(base + rng.normal(0, 8, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{split}_{i}.JPEG", quality=85)
    done.write_text("")
    return root


def bench(root: Path, in_memory: bool, workers: int, args: argparse.Namespace, scratch: Path) -> dict:
    """One `regbench bench` process's figures."""
    overrides = ["model=mynet", "dataset=imagenette", f"dataset.root={root}", f"dataset.num_classes={CLASSES}",
                 f"dataset.image_size={args.image_size}", f"dataset.resize_size={round(args.image_size / 0.875)}",
                 f"dataset.in_memory={str(in_memory).lower()}", f"trainer.num_workers={workers}",
                 f"trainer.batch_size={args.batch}", "trainer.threads=1", f"bench.steps={args.steps}",
                 "bench.warmup=3", "bench.eval_repeats=1", f"hydra.run.dir={scratch / 'hydra'}"]
    with tempfile.TemporaryDirectory(dir=scratch) as cache:
        proc = subprocess.Popen([sys.executable, "-m", "regbench", "bench", *overrides], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "XDG_CACHE_HOME": cache})
        peak_mb = 0.0
        while proc.poll() is None:
            peak_mb = max(peak_mb, sum(pss_mb(pid) for pid in [proc.pid, *descendants(proc.pid)]))
            time.sleep(0.2)
        stdout, stderr = proc.communicate()
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not rows:
        sys.exit(f"regbench bench {' '.join(overrides)} failed:\n{stdout}\n{stderr}")
    return {**rows[0], "tree_pss_mb": peak_mb}


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (from /proc/*/stat's parent ids)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        out += frontier
    return out


def pss_mb(pid: int) -> float:
    """A process's proportional set size in MB (0 when it has ended)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "regbench-bench-stream")
    parser.add_argument("--sizes", default="5000,20000")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"mynet, batch {args.batch}, {args.image_size} px crops of {SIDE} px JPEGs, {args.steps} timed steps, "
          f"trainer.threads=1\n")
    print("| training images | data | max RSS MB, trainer | peak PSS MB, trainer + readers | data wait % of step | "
          "step ms | batch alone ms |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        root = write_folder(args.dir / f"n{n}", n)
        for in_memory, workers in ((False, 1), (False, 2), (True, 0)):
            r = bench(root, in_memory, workers, args, args.dir)
            data = "in memory" if in_memory else f"streamed, {workers} worker{'s' if workers > 1 else ''}"
            print(f"| {n:,} | {data} | {r['max_rss_mb']:,.0f} | {r['tree_pss_mb']:,.0f} | "
                  f"{100 * r['data_wait_share']:.1f} | {r['step_ms']:.1f} | {r['data_ms_per_batch']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
