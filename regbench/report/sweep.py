"""Hydra callback: when a multirun ends, its sweep folder gets its table and plot (failed jobs included), and jobs
that did not complete end the command."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from regbench.run_dir import PLOT_PNG, TABLE_CSV, TABLE_MD

log = logging.getLogger("regbench")


class JobsNotCompleted(BaseException):
    """The sweep's jobs that did not complete, "folder: status: error" each, as their run folders say.

    Raised in the launching process when the sweep ends, so it holds for every launcher (jobs may run in other
    processes); a BaseException because Hydra turns a callback's Exception into a warning, and the command line
    must exit non-zero."""

    def __init__(self, jobs: list[str]) -> None:
        super().__init__(f"{len(jobs)} job(s) did not complete: " + "; ".join(jobs[:3]))
        self.jobs = jobs


def write_report(sweep_dir: str | Path) -> str:
    """table.md, table.csv and plot.png of every run under `sweep_dir` (failed jobs included); returns the Markdown."""
    from regbench.report.plot import plot_runs
    from regbench.report.runs import find_runs
    from regbench.report.table import save_table

    runs = find_runs([sweep_dir])
    markdown = save_table(runs, sweep_dir)
    plot_runs(runs, Path(sweep_dir) / PLOT_PNG)
    return markdown


class WriteSweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from regbench.hparams_search import best_trial
        from regbench.report.runs import find_runs

        sweep_dir = config.hydra.sweep.dir
        not_completed: list[str] = []
        try:
            runs = find_runs([sweep_dir])
            not_completed = [f"{r.path}: {r.status}: {r.summary.get('error')}" for r in runs if r.status != "completed"]
            print(write_report(sweep_dir))
            best = best_trial(Path(sweep_dir), runs)
            if best:
                print(best)
        except Exception as err:  # a report problem must not hide the sweep's own outcome
            log.error("could not write the sweep report in %s: %s", sweep_dir, err)
        else:
            log.info("%s, %s and %s written to %s", TABLE_MD, TABLE_CSV, PLOT_PNG, sweep_dir)
        if not_completed:
            raise JobsNotCompleted(not_completed)
