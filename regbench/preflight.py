"""Before a `regbench train|bench` command line starts any work: every one of its jobs composed and checked, what
Paddle reads when it loads applied, and each job's model built, so that a mistake costs no work.

A multirun is expanded as Hydra's basic sweeper expands it (`hydra.sweeper.params`, then the command line; the
cartesian product of the swept values), or regbench's rows sweeper (each row before each such combination), and
numbered as Hydra numbers its jobs. Each job's config is the one Hydra
composes for it: Hydra builds the defaults tree from the config-group choices (and its own `hydra` overrides) alone
and applies every other override to the result, so the tree is built once per distinct set of choices and the other
overrides are applied to a copy, as Hydra applies them: a sweep over seeds and numbers composes its tree once.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from hydra.types import RunMode
from hydra_plugins.regbench_sweeper.rows_sweeper import RowSweeper, row_jobs
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from regbench.config import CONF_DIR, check_composed, check_group_choices, explain, parse_overrides
from regbench.errors import UserError


BASIC_SWEEPER = f"{BasicSweeper.__module__}.{BasicSweeper.__name__}"
ROWS_SWEEPER = f"{RowSweeper.__module__}.{RowSweeper.__name__}"  # a grid too: its jobs are known up front
# Hydra's options that only show something (help, information; shell completion too): no job runs
SHOW_ONLY = ("--help", "-h", "--hydra-help", "--info", "-i")


def preflight(argv: list[str]) -> None:
    """Unless Hydra is only asked to show something: compose and check every job's config, apply what Paddle reads
    when it loads, load Paddle and build each job's model."""
    from regbench.hparams_search import require_held_out, require_sweeper
    from regbench.track import require
    from regbench.train import process_env
    from regbench.train.resume_check import check_resume

    if any(a in SHOW_ONLY or a.startswith(("-sc", "--shell-completion")) for a in argv):
        return
    require_sweeper(argv)
    jobs = command_jobs(argv)
    for job in jobs:  # before Hydra rewrites the saved config of the folder it resumes
        check_resume(job.cfg, job.folder)
        require(job.cfg.logger)  # a chosen tracker's package is installed
    process_env.prepare(jobs[0].cfg.trainer)
    for job in jobs:  # a search's trials never select on the test split
        if job.search:
            require_held_out(job.cfg)
    from regbench.models import build_model

    built: set[str] = set()
    for job in jobs:  # a model that does not fit the data fails here, before any work
        key = json.dumps([OmegaConf.to_container(job.cfg[k], resolve=True) for k in ("model", "act", "reg")])
        if key not in built:
            built.add(key)
            build_model(job.cfg.model, job.cfg.act, job.cfg.reg)


@dataclass
class Job:
    num: int  # hydra.job.num: the job's place in the sweep (0 for a single run)
    overrides: list[str]
    cfg: DictConfig  # composed, with its `hydra` node
    multirun: bool

    @property
    def search(self) -> bool:
        """A sweep whose sweeper picks each job's values from the results so far (e.g. Optuna), not a grid."""
        return self.multirun and searches(self.cfg)

    @property
    def folder(self) -> Path:
        """The run folder Hydra gives this job: hydra.run.dir, or hydra.sweep.dir / hydra.sweep.subdir."""
        HydraConfig.instance().set_config(self.cfg)  # for ${hydra:...} in the folder names
        hc = self.cfg.hydra
        return Path(hc.sweep.dir) / str(hc.sweep.subdir) if self.multirun else Path(hc.run.dir)


def command_jobs(argv: list[str]) -> list[Job]:
    """Every job of a `train`/`bench` command line, composed and checked (one for a run, the product for -m)."""
    args = get_args_parser().parse_args(argv)
    overrides: list[str] = args.overrides
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        parsed = parse_overrides(overrides, config_loader=loader)
        check_group_choices(parsed)
        compose = _Composer(loader)
        # the sweep's own config, as Hydra composes it before sweeping: every override but the swept ones
        master = compose([o.input_line for o in parsed if not o.is_sweep_override()])
        multirun = args.multirun or master.hydra.mode == RunMode.MULTIRUN
        if not multirun:
            swept = [o.input_line for o in parsed if o.is_sweep_override()]
            if swept:
                raise UserError(f"{swept[0]} gives several values: add -m to run one job for each, "
                                f"or quote the value to pass it as one string")
            jobs = [Job(0, overrides, master, multirun=False)]
        elif searches(master):
            # a search (e.g. Optuna) picks each job's values as it goes: check the sweep's own config as one job
            jobs = [Job(0, overrides, master, multirun=True)]
            with open_dict(master):
                master.hydra.job.num = master.hydra.job.id = 0
        else:
            params = [f"{k}={v}" for k, v in (master.hydra.sweeper.get("params") or {}).items()]
            hydra_overrides = [o.input_line for o in parsed if o.is_hydra_override()]
            task = parse_overrides([*params, *(o.input_line for o in parsed if not o.is_hydra_override())],
                                   config_loader=loader)
            check_group_choices(task)
            rows = master.hydra.sweeper.get("rows")  # regbench's rows sweeper (hydra/sweeper=rows)
            try:
                (batch,) = BasicSweeper.split_arguments(task, max_batch_size=None) if rows is None else [
                    row_jobs(rows, task)]
            except HydraException as err:
                raise UserError(str(err).splitlines()[0]) from None
            jobs = [Job(num, [*hydra_overrides, *job], compose([*hydra_overrides, *job]), multirun=True)
                    for num, job in enumerate(batch)]
            for job in jobs:
                with open_dict(job.cfg):
                    job.cfg.hydra.job.num = job.cfg.hydra.job.id = job.num
    for job in jobs:
        check_composed(job.cfg, job.overrides)
    return jobs


def searches(cfg: DictConfig) -> bool:
    """Whether the config's sweeper is a search (e.g. Optuna) rather than a grid whose jobs are known up front."""
    return cfg.hydra.sweeper._target_ not in (BASIC_SWEEPER, ROWS_SWEEPER)


class _Composer:
    """hydra.compose(overrides) for many override lists, building each distinct defaults tree once."""

    def __init__(self, loader: ConfigLoaderImpl) -> None:
        self.repo = loader.repository
        self.trees: dict[tuple[str, ...], DictConfig] = {}

    def _shapes_tree(self, override: Override) -> bool:
        """What Hydra builds the defaults tree from: config-group choices, and its own settings."""
        return override.is_hydra_override() or (
            not isinstance(override.value(), dict) and self.repo.group_exists(override.key_or_group))

    def __call__(self, overrides: list[str]) -> DictConfig:
        parsed = parse_overrides(overrides)
        tree = tuple(o.input_line for o in parsed if self._shapes_tree(o))
        try:
            if tree not in self.trees:
                self.trees[tree] = hydra.compose("config", overrides=list(tree), return_hydra_config=True)
            cfg = copy.deepcopy(self.trees[tree])
            ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if not self._shapes_tree(o)], cfg)
        except (HydraException, OmegaConfBaseException) as err:
            raise UserError(explain(str(err), overrides)) from None
        # what Hydra records of the overrides themselves
        task = [o for o in parsed if not o.is_hydra_override()]
        hc = cfg.hydra
        hc.overrides.task = [o.input_line for o in task]
        hc.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
        hc.job.override_dirname = get_overrides_dirname(
            overrides=task, kv_sep=hc.job.config.override_dirname.kv_sep,
            item_sep=hc.job.config.override_dirname.item_sep,
            exclude_keys=list(hc.job.config.override_dirname.exclude_keys))
        return cfg
