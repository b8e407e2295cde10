"""Hydra callback: when a multirun ends, its sweep folder gets its table and plot (failed jobs included)."""
from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("regbench")


class WriteSweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from regbench.report import write_report

        sweep_dir = config.hydra.sweep.dir
        try:
            print(write_report(sweep_dir))
        except Exception as err:  # a report problem must not hide the sweep's own outcome
            log.error("could not write the sweep report in %s: %s", sweep_dir, err)
            return
        log.info("table.md, table.csv and plot.png written to %s", sweep_dir)
