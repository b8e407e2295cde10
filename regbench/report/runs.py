"""Run folders: finding them at any depth, reading them, and grouping runs by the config choices that differ."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regbench import run_dir
from regbench.reg import combination
from regbench.config import group_options
from regbench.run_dir.evaluated import figures as evaluated_figures
from regbench.errors import UserError
from regbench.identity import separates_rows
from regbench.saved_config import read_saved_config

# summary.json fields that name the choices, for a run folder whose .hydra/ is gone
SUMMARY_CHOICES = ("model", "act", "reg", "dataset", "optim", "sched", "experiment")
STATUS_ORDER = ("completed", "running", "interrupted", "diverged", "failed", "missing")
DEFAULT_BASELINES = (("reg", "none"), ("act", "relu"))  # rows compared with, and listed first
ABSENT = "—"  # a key the run's config does not have (e.g. model.use_residual when model=lenet5_nndl)

PathLike = Union[str, Path]


class _Absent:
    def __repr__(self) -> str:
        return ABSENT


MISSING = _Absent()


@dataclass
class Run:
    """One run folder as the trainer left it."""
    path: Path
    status: str                   # summary.json status, or "missing" when there is no readable summary.json
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    choices: dict[str, Any]       # Hydra group choices (hydra/* excluded): model, act, reg, ...
    overrides: dict[str, Any]     # command-line overrides that can change results: key -> parsed value
    config: DictConfig | None     # .hydra/config.yaml, keys added since it was written back-filled (saved_config)
    evaluated: dict[str, Any] = field(default_factory=dict)  # eval.json's figures

    def unused(self, key: str) -> bool:
        """Whether `key` is a reg setting this run does not use (unused_reg_setting)."""
        return unused_reg_setting(key, self.choices.get("reg"), self.config)

    def value(self, key: str) -> Any:
        """The run's choice for a config group, else its effective config value at a dotted key (MISSING if none)."""
        if key in self.choices:
            return self.choices[key]
        if self.config is None:
            return self.overrides.get(key, MISSING)
        if self.unused(key):
            return MISSING
        found = OmegaConf.select(self.config, key, default=MISSING, throw_on_resolution_failure=False)
        if isinstance(found, (DictConfig, ListConfig)):
            return OmegaConf.to_container(found, resolve=True, throw_on_missing=False)
        return found


def unused_reg_setting(key: str, reg_label: Any, config: DictConfig | None = None) -> bool:
    """A `reg.<option>.*` key of a regularizer the run does not use (reg.dropblock.seed_region under reg=none), or a
    shared `reg.<name>` setting that none of the run's places refers to (reg.p, the dropout rate, under reg=cutout);
    the second needs the run's config."""
    parts = key.split(".")
    if parts[0] != "reg" or not isinstance(reg_label, str):
        return False
    if len(parts) >= 3:
        return parts[1] in group_options("reg") and parts[1] not in reg_label.split("+")
    if len(parts) != 2 or config is None or parts[1] in group_options("reg"):
        return False
    reg = OmegaConf.to_container(config.get("reg", {}), resolve=False)
    if not isinstance(reg, dict) or isinstance(reg.pop(parts[1], None), (dict, list, type(None))):
        return False  # a place (conv, fc, ...) or the options' bookkeeping, not a setting
    return not _refers_to(reg, parts[1])


def _refers_to(node: Any, name: str) -> bool:
    """Whether an interpolation anywhere in `node` (a container of the unresolved config) ends at key `name`."""
    if isinstance(node, dict):
        return any(_refers_to(v, name) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, name) for v in node)
    return isinstance(node, str) and re.search(r"\$\{[^}]*\b" + re.escape(name) + r"\}", node) is not None


@dataclass
class Group:
    """Runs with the same identity (choices and overridden values) and the same status."""
    values: dict[str, str]        # identity key -> display value
    status: str
    runs: list[Run]


def format_value(value: Any) -> str:
    """A config value as a short, stable string (the form Hydra overrides use)."""
    if value is MISSING:
        return ABSENT
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        # a factory node: its class names it; a plain mapping is summarized
        target = value.get("_target_")
        return str(target).rsplit(".", 1)[-1] if target else "{...}"
    return str(value)


def values_equal(a: Any, b: Any) -> bool:
    """Config values equal, numbers up to float rounding (1e-3 == 0.001)."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def parse_overrides(lines: Sequence[str]) -> dict[str, Any]:
    """Override strings -> {key: parsed value} (None for a deletion), of the keys that separate table rows."""
    parsed = OverridesParser.create().parse_overrides(list(lines))
    return {o.key_or_group: None if o.is_delete() else o.value() for o in parsed if separates_rows(o.key_or_group)}


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _nested(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def load_run(path: PathLike) -> Run:
    """Read one run folder; anything unreadable or absent is reported through status "missing", never raised."""
    path = Path(path)
    summary = run_dir.read_json(path / run_dir.SUMMARY)
    choices = _nested(_read_yaml(path / run_dir.HYDRA_DIR / run_dir.HYDRA_CONFIG), "hydra", "runtime", "choices")
    if isinstance(choices, dict):
        choices = {k: v for k, v in choices.items() if separates_rows(k)}
    else:
        choices = {k: summary[k] for k in SUMMARY_CHOICES if summary and k in summary}
    lines = _read_yaml(path / run_dir.HYDRA_DIR / run_dir.OVERRIDES)
    try:
        config = read_saved_config(path)
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        config = None
    if "reg" not in choices and isinstance(config, DictConfig) and isinstance(config.get("reg"), DictConfig):
        choices["reg"] = combination.label(config.reg)  # Hydra records no choice for a list: reg=[dropblock,cutmix]
    return Run(path=path, status=(summary or {}).get("status") or "missing", summary=summary or {},
               metrics=run_dir.read_metrics(path / run_dir.METRICS), choices=choices,
               overrides=parse_overrides(lines) if isinstance(lines, list) else {},
               config=config if isinstance(config, DictConfig) else None,
               evaluated=evaluated_figures(path))


def find_runs(dirs: Sequence[PathLike]) -> list[Run]:
    """Every run folder in or under `dirs` (single runs and sweeps, any depth), each once."""
    found: dict[Path, Run] = {}
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise UserError(f"{d} is not a folder: pass run or sweep folders (e.g. outputs/multirun/DATE/TIME)")
        for folder in run_dir.run_folders(root.resolve()):
            found.setdefault(folder, load_run(folder))
    if not found:
        raise UserError(f"no run folders (with {run_dir.SUMMARY} or {run_dir.HYDRA_DIR}/) under {', '.join(map(str, dirs))}: "
                        "pass the folder of a run or a sweep")
    return list(found.values())


def identity_keys(runs: Sequence[Run]) -> list[str]:
    """The keys that can tell runs apart: every group choice, then every overridden value key (sorted)."""
    choices = sorted({k for r in runs for k in r.choices})
    overridden = sorted({k for r in runs for k in r.overrides if k not in choices})
    return choices + overridden


def group_runs(runs: Sequence[Run]) -> tuple[list[Group], list[str]]:
    """Runs grouped by identity and status (sorted), and the identity keys whose values differ between groups."""
    keys = identity_keys(runs)
    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        values = {k: format_value(run.value(k)) for k in keys}
        groups.setdefault((*values.values(), run.status), Group(values, run.status, [])).runs.append(run)
    varying = [k for k in keys if len({g.values[k] for g in groups.values()}) > 1]

    first = dict(DEFAULT_BASELINES)

    def order(g: Group) -> tuple[Any, ...]:
        rank = STATUS_ORDER.index(g.status) if g.status in STATUS_ORDER else len(STATUS_ORDER)
        return tuple((g.values[k] != first.get(k), g.values[k]) for k in keys), rank, g.status

    return sorted(groups.values(), key=order), varying
