"""A run folder's saved config as today's regbench reads it, for eval, tables and resuming alike: a run made by an
older regbench lacks the keys added since, and each is back-filled here at today's default for the run's group
choices, as if the run had left it at its default; `seeds.*`, whose defaults are `${seed}`, then follow the run's own
`seed`, as every random stream did before those keys existed."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regbench.config import compose_choices
from regbench.errors import UserError
from regbench.reg import combination
from regbench.run_dir import CONFIG, HYDRA_CONFIG, HYDRA_DIR

# trackers and a search: OTHER keys (identity.py), and a search's sweeper may not be installed where the run is read
_NOT_BACK_FILLED = ("logger", "hparams_search")
# a `_target_` a run saved before its class or function moved -> where it is now
MOVED_TARGETS = {
    # the regularizers moved into regbench/reg/, one module per conf/reg/ option
    "regbench.layers.dropblock.DropBlock": "regbench.reg.dropblock.DropBlock",
    "regbench.layers.dropblock.placed_dropblock": "regbench.reg.dropblock.placed_dropblock",
    "regbench.layers.droppath.DropPath": "regbench.reg.droppath.DropPath",
    "regbench.batchreg.cutout.Cutout": "regbench.reg.cutout.Cutout",
    "regbench.batchreg.mix.Mixup": "regbench.reg.mixup.Mixup",
    "regbench.batchreg.mix.CutMix": "regbench.reg.cutmix.CutMix",
}


def read_saved_config(folder: Path, subdir: str = HYDRA_DIR) -> DictConfig | ListConfig:
    """`folder`/`subdir`/config.yaml with every key it lacks and today's conf/ has at today's default for the choices
    in `subdir`/hydra.yaml; as saved when those choices no longer compose. Raises what OmegaConf.load raises on an
    absent or unreadable file (OSError, yaml.YAMLError, OmegaConfBaseException). A `_target_` that has moved since
    names where it is now (MOVED_TARGETS)."""
    cfg = OmegaConf.load(folder / subdir / CONFIG)
    if not isinstance(cfg, DictConfig):
        return cfg
    _current_targets(cfg)
    try:
        choices = OmegaConf.load(folder / subdir / HYDRA_CONFIG).hydra.runtime.choices
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        return cfg
    picked = {group: _choice(value) for group, value in choices.items()
              if value is not None and "/" not in group and group not in _NOT_BACK_FILLED}
    if "reg" not in picked and isinstance(cfg.get("reg"), DictConfig) and combination.names(cfg.reg):
        picked["reg"] = _choice(combination.names(cfg.reg))  # Hydra records no choice for a list: reg=[a,b]
    defaults = _defaults(tuple(f"{group}={choice}" for group, choice in picked.items()))
    if defaults is None:
        return cfg
    try:
        return OmegaConf.merge(defaults, cfg)  # the saved values win; a key no longer in conf/ stays
    except OmegaConfBaseException:
        return cfg


@functools.lru_cache(maxsize=None)  # the runs of a sweep share a few choices: composed once each (merge copies it)
def _defaults(choices: tuple[str, ...]) -> DictConfig | None:
    try:
        defaults = compose_choices(list(choices))
    except UserError:
        return None
    OmegaConf.set_struct(defaults, False)
    return defaults


def _choice(value: object) -> str:
    return f"[{','.join(map(str, value))}]" if isinstance(value, (list, ListConfig)) else str(value)


def _current_targets(node: DictConfig | ListConfig) -> None:
    """Rewrite every `_target_` in `node` that names a moved class or function to where it is now."""
    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            _current_targets(value)
        elif key == "_target_" and value in MOVED_TARGETS:
            node[key] = MOVED_TARGETS[value]
