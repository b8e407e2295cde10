"""Progress of a study's stages: one line per run (`training 4/21 reg=cutout seed=1`, `scoring 9/21`) with the
elapsed and estimated remaining time; redrawn in place as a bar on a terminal, plain lines in a log."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Callable, TextIO

import yaml

from regbench.run_dir import HYDRA_DIR, OVERRIDES, SUMMARY

BAR = 20


def clock(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour."""
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """The lines of one stage of `total` steps; the remaining time is the mean time of the steps begun so far."""

    def __init__(self, stage: str, total: int, stream: TextIO = sys.stderr) -> None:
        self.stage, self.total, self.stream = stage, total, stream
        self.start = time.monotonic()
        self.live = stream.isatty()

    def step(self, i: int, what: str = "", begun: int | None = None) -> str:
        """The line of step `i` (1-based) beginning, `begun` steps timed so far (default i - 1); returns it."""
        elapsed, begun = time.monotonic() - self.start, i - 1 if begun is None else begun
        left = f", {clock(elapsed / begun * (self.total - begun))} left" if begun else ""
        line = f"{self.stage} {i}/{self.total}{' ' + what if what else ''} ({clock(elapsed)} elapsed{left})"
        if self.live:
            filled = BAR * (i - 1) // max(self.total, 1)
            print(f"\r\033[K[{'#' * filled}{'.' * (BAR - filled)}] {line}", end="", file=self.stream, flush=True)
        else:
            print(line, file=self.stream, flush=True)
        return line

    def end(self) -> None:
        """The stage's last line: its wall time."""
        print(("\r\033[K" if self.live else "") + f"{self.stage}: {self.total} done in "
              f"{clock(time.monotonic() - self.start)}", file=self.stream, flush=True)


def job_label(folder: Path, keys: Callable[[str], bool]) -> str:
    """The job's command-line overrides that `keys` selects (its row's and its seed), as written."""
    try:
        overrides = yaml.safe_load((folder / HYDRA_DIR / OVERRIDES).read_text()) or []
    except (OSError, yaml.YAMLError):
        return ""
    return " ".join(o for o in overrides if isinstance(o, str) and keys(o))


class WatchSweep(threading.Thread):
    """Reports each job of a sweep as it starts (its folder's saved overrides or summary.json written after the watch
    began), whatever launcher runs them: a thread that polls the sweep folder."""

    def __init__(self, sweep: Path, progress: Progress, keys: Callable[[str], bool], every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.sweep, self.progress, self.keys, self.every_s = sweep, progress, keys, every_s
        self.since = time.time()
        self.seen: set[int] = set()
        self.stopped = threading.Event()

    def poll(self) -> None:
        for j in range(self.progress.total):
            folder = self.sweep / str(j)
            if j in self.seen or not any(_touched(folder / name, self.since) for name in (SUMMARY,
                                                                                         f"{HYDRA_DIR}/{OVERRIDES}")):
                continue
            self.seen.add(j)
            self.progress.step(j + 1, job_label(folder, self.keys), begun=len(self.seen) - 1)

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.poll()

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.poll()


def _touched(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except OSError:
        return False
