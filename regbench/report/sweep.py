"""Hydra callback: when a multirun ends, its sweep folder gets its table and plot (failed jobs included)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from regbench.run_dir import PLOT_PNG, TABLE_CSV, TABLE_MD

log = logging.getLogger("regbench")

# "folder: status: error" of the last sweep's jobs that did not complete (read by the CLI for its exit code);
# filled here, in the launching process, so it holds for every launcher (jobs may run in other processes)
NOT_COMPLETED: list[str] = []


class WriteSweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from regbench.report import write_report
        from regbench.report.runs import find_runs
        from regbench.tune import best_trial

        sweep_dir = config.hydra.sweep.dir
        try:
            runs = find_runs([sweep_dir])
            NOT_COMPLETED[:] = [f"{r.path}: {r.status}: {r.summary.get('error')}" for r in runs if r.status != "completed"]
            print(write_report(sweep_dir))
            best = best_trial(Path(sweep_dir), runs)
            if best:
                print(best)
        except Exception as err:  # a report problem must not hide the sweep's own outcome
            log.error("could not write the sweep report in %s: %s", sweep_dir, err)
            return
        log.info("%s, %s and %s written to %s", TABLE_MD, TABLE_CSV, PLOT_PNG, sweep_dir)
