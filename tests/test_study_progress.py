"""A study's progress lines: per run, with elapsed and remaining time; a bar redrawn in place on a terminal, plain lines
in a log; and the sweep watcher that names each job as it starts."""
from __future__ import annotations

import io
import time
from pathlib import Path

from regbench.study.progress import Progress, WatchSweep, clock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_plain_lines_with_the_remaining_time_of_the_mean_step() -> None:
    log = io.StringIO()
    progress = Progress("scoring", 21, log)
    progress.start -= 90  # 90 s since the stage began, 8 runs done: 90 / 8 s each for the 13 left
    line = progress.step(9, "reg=cutout seed=1")
    assert line == f"scoring 9/21 reg=cutout seed=1 (1:30 elapsed, {clock(90 / 8 * 13)} left)"
    assert log.getvalue() == line + "\n" and clock(90 / 8 * 13) == "2:26"
    assert progress.step(1) == "scoring 1/21 (1:30 elapsed)"  # nothing timed yet: no estimate
    assert clock(3725) == "1:02:05"


def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    terminal = Terminal()
    progress = Progress("training", 4, terminal)
    progress.step(3, "reg=none seed=0")
    progress.end()
    shown = terminal.getvalue()
    assert shown.startswith("\r\033[K[##########..........] training 3/4 reg=none seed=0 (0:00 elapsed")
    assert shown.endswith("\r\033[Ktraining: 4 done in 0:00\n") and shown.count("\n") == 1


def test_the_watcher_names_each_job_as_its_folder_appears(tmp_path: Path) -> None:
    log = io.StringIO()
    watch = WatchSweep(tmp_path, Progress("training", 3, log), lambda o: o.startswith(("reg=", "seed=")))
    old = tmp_path / "0"  # a job written before the watch began (an earlier invocation's): not reported
    (old / ".hydra").mkdir(parents=True)
    (old / ".hydra" / "overrides.yaml").write_text("- reg=none\n- seed=0\n")
    watch.since = time.time() + 1
    watch.poll()
    assert log.getvalue() == ""
    watch.since = time.time() - 60  # now both were written since the watch began
    (tmp_path / "1" / ".hydra").mkdir(parents=True)
    (tmp_path / "1" / ".hydra" / "overrides.yaml").write_text("- reg=cutout\n- trainer.epochs=1\n- seed=1\n")
    watch.poll()
    watch.poll()  # each job once
    lines = log.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["training 1/3 reg=none seed=0", "training 2/3 reg=cutout seed=1"]
