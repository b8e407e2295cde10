"""Finding, composing and checking the Hydra config tree (top-level conf/, shipped as regbench.conf)."""
from __future__ import annotations

import functools
import re
import sys
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, Iterator

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regbench.errors import UserError

CONF_DIR = Path(str(files("regbench.conf")))
GROUPS = ("model", "act", "reg", "dataset", "optim", "sched", "trainer", "experiment")


@functools.cache
def group_options(group: str) -> tuple[str, ...]:
    """The config names a group offers (files starting with `_` are shared bases, not options)."""
    return tuple(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_")))


def hydra_app(task: Callable[[DictConfig], Any], argv: list[str]) -> list[Any]:
    """Run `task` as a Hydra app on argv (everything Hydra's own command line offers); returns what its jobs that ran
    in this process returned, in order (a launcher that runs them in other processes returns none of theirs)."""
    from hydra.core.plugins import Plugins
    from hydra_plugins.regbench_sweeper.rows_sweeper import RowSweeper

    # Hydra's plugin scan misses modules of an editable install: register regbench's sweeper by hand
    Plugins.instance().register(RowSweeper)
    returns: list[Any] = []

    @functools.wraps(task)
    def job(cfg: DictConfig) -> Any:
        returns.append(task(cfg))
        return returns[-1]

    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(job)()
    return returns


def check_group_choices(parsed: list[Override]) -> None:
    """Every value given to a config group names one of its options: each value of a sweep, each entry of a list."""
    for override in parsed:
        group = override.key_or_group
        if group not in GROUPS or override.is_delete() or override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue
        values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        options = group_options(group)
        for value in values:
            if isinstance(value, dict):  # a config override of the group's keys, not a choice
                continue
            for name in value if isinstance(value, list) else [value]:
                if name is not None and str(name) not in options:
                    raise UserError(f"unknown {group} {name!r}; choose one of: {', '.join(options)}")


def parse_overrides(overrides: list[str], **kwargs: Any) -> list[Override]:
    """Hydra's parse of command-line overrides, or a one-line UserError."""
    try:
        return OverridesParser.create(**kwargs).parse_overrides(overrides)
    except HydraException as err:
        raise UserError(f"bad override: {str(err).splitlines()[0]}") from None


def _first_values(overrides: list[str]) -> list[str]:
    """Check every group choice of every sweep value; return the overrides with each sweep reduced to its first value."""
    parsed = parse_overrides(overrides)
    check_group_choices(parsed)
    return [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else text
            for o, text in zip(parsed, overrides)]


def compose(overrides: list[str]) -> DictConfig:
    """The composed config (with `hydra.runtime.choices`) for overrides, or a one-line UserError."""
    overrides = _first_values(overrides)
    try:
        with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra.compose("config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(explain(str(err), overrides)) from None
    check_composed(cfg, overrides)
    return cfg


def compose_choices(choices: list[str]) -> DictConfig:
    """Today's config for group choices (`group=option`, no other override), without its hydra node, unresolved and
    unchecked (a mandatory `???` stays); a UserError when a choice no longer composes."""
    try:
        with _initialized():
            return hydra.compose("config", overrides=choices)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(" ".join(str(err).split())) from None


def check_composed(cfg: DictConfig, overrides: list[str]) -> None:
    """Every value of a composed config resolves and is in range, or a one-line UserError."""
    try:
        OmegaConf.to_container(run_config(cfg), resolve=True, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(explain(str(err), overrides)) from None
    from regbench.schema import check

    check(cfg)


@contextmanager
def _initialized() -> Iterator[None]:
    """Hydra's global state set to conf/ (left as it is when a caller has set it already)."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def explain(message: str, overrides: list[str]) -> str:
    """One line for a composition error; an unknown key lists the valid keys beside it."""
    unknown = re.search(r"Could not override '([^']+)'", message)
    if unknown:
        key = unknown.group(1)
        parent, _, leaf = key.rpartition(".")
        groups_only = [o for o in overrides if o.split("=")[0].lstrip("+~") in GROUPS]
        with _initialized():
            node = OmegaConf.select(hydra.compose("config", overrides=groups_only), parent) if parent else None
        if isinstance(node, DictConfig):
            return f"unknown option {key!r}; {parent} has: {', '.join(str(k) for k in node)} (add new keys with +{key}=...)"
        return f"unknown option {key!r} (add new keys with +{key}=...)"
    missing = re.search(r"Missing mandatory value: ([\w.]+)(?:\s+full_key: ([\w.]+))?", message)
    if missing:
        key = missing.group(1) if "." in missing.group(1) else missing.group(2) or missing.group(1)
        return f"{key} must be set: add {key}=... to the command line"
    return " ".join(line.strip() for line in message.splitlines()[:2] if line.strip())


def run_config(cfg: DictConfig) -> DictConfig:
    """The composed config without its `hydra` node."""
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
