"""A sweeper for grids whose rows set several keys at once: one job per row × each combination of the command
line's own sweeps (Hydra's basic sweeper only forms cartesian products of single keys).

    regbench train -m hydra/sweeper=rows "hydra.sweeper.rows=[['reg=none'],['reg=dropblock','reg.dropblock.block_size=3']]" seed=0,1

runs 4 jobs (each override quoted: Hydra's grammar takes no `=` in an unquoted list item). A job's overrides are its row's, then the command line's, so the run folder records both and an override
given on the command line wins over a row's. Any launcher runs the jobs (all in one batch unless max_batch_size).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra._internal.core_plugins import basic_sweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


def row_jobs(rows: Sequence[Sequence[str]], overrides: List[Override]) -> List[List[str]]:
    """Every row's overrides followed by each combination of `overrides`' sweeps (the basic sweeper's jobs)."""
    # looked up at call time: Hydra's plugin scan re-executes the basic sweeper's module
    [combinations] = basic_sweeper.BasicSweeper.split_arguments(overrides, None)
    return [[*row, *combination] for row in rows for combination in combinations]


class RowSweeper(Sweeper):
    def __init__(self, rows: Sequence[Sequence[str]], max_batch_size: Optional[int] = None) -> None:
        super().__init__()
        if not rows:
            raise ValueError("hydra.sweeper.rows is empty: give a list of rows, each a list of overrides")
        self.rows = [list(row) for row in rows]
        self.max_batch_size = max_batch_size
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        # read once more from the sweep's config, resolved once as `regbench.preflight` reads them: Hydra's instantiate
        # resolved `rows` twice, so an escaped interpolation (`\${data_files.cifar10}`, as `regbench reproduce`
        # writes one) would not reach each job as written, to be resolved in the job's own config
        self.rows = [list(row) for row in config.hydra.sweeper.rows]
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                 task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs = row_jobs(self.rows, parser.parse_overrides(arguments))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size or len(jobs)
        returns = []
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            self.validate_batch_is_legal(batch)  # every job composes, before any of the batch runs
            results = self.launcher.launch(batch, initial_job_idx=start)
            for r in results:
                _ = r.return_value  # raises the job's exception, as the basic sweeper does
            returns.append(results)
        return returns
