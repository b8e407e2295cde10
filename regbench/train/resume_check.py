"""Before a run resumes from its checkpoint: is it the run its folder holds? Checked against the folder's saved config
(Hydra's `.hydra/config.yaml` and the group choices in `.hydra/hydra.yaml`), before Hydra rewrites them."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regbench.errors import UserError
from regbench.train import run_dir

# What a run is: these groups (the choice and every resolved key), the seed (data order, augmentation and dropout
# draws derive from it) and the trainer keys that change what a step computes or which samples it takes. Speed
# switches, evaluation and logging settings may change; the length may grow (below).
GROUPS = ("model", "act", "reg", "dataset", "optim", "sched")
TRAINER_KEYS = ("batch_size", "drop_last", "label_smoothing")
LOCATION_KEYS = {"data_file", "data_dir", "root"}  # where the dataset's files are, not what they are
LENGTH_KEYS = ("epochs", "max_steps")  # may grow, never shrink (null max_steps: no limit)
SHOWN = 4


def check_resume(cfg: DictConfig, folder: Path) -> None:
    """A UserError naming what differs when `cfg` resumes (trainer.resume=true) a checkpoint of another run."""
    if not cfg.trainer.resume or not (folder / "checkpoints" / "last.npz").exists():
        return
    saved = folder / (cfg.hydra.output_subdir or ".hydra")
    try:
        old = OmegaConf.load(saved / "config.yaml")
        old_choices = OmegaConf.load(saved / "hydra.yaml").hydra.runtime.choices
    except (OSError, OmegaConfBaseException):
        print(f"regbench: warning: {folder} has a checkpoint but no saved config ({saved.name}/config.yaml): "
              "resuming without checking that it is the same run", file=sys.stderr)
        return
    new_choices = cfg.hydra.runtime.choices
    before, after = identity(old, old_choices), identity(cfg, new_choices)
    changed = [k for k in dict.fromkeys([*before, *after]) if before.get(k, "<absent>") != after.get(k, "<absent>")]
    changed = [k for k in changed if _group_of(k) not in changed]  # a group chosen differently: name the choice
    differences = [f"{k} {before.get(k, '<absent>')} → {after.get(k, '<absent>')}" for k in changed]
    for key in LENGTH_KEYS:
        was, now = old.trainer.get(key), cfg.trainer.get(key)
        if now is not None and (was is None or now < was):
            differences.append(f"trainer.{key} {was} → {now} (a run may grow, not shrink)")
    summary = run_dir.read_json(folder / run_dir.SUMMARY) or {}
    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    if summary.get("world_size", world) != world:
        differences.append(f"data-parallel ranks {summary['world_size']} → {world}")
    if differences:
        shown = "; ".join(differences[:SHOWN]) + (f" and {len(differences) - SHOWN} more" if len(differences) > SHOWN else "")
        raise UserError(f"trainer.resume=true, but {folder} holds another run: {shown}. Resume with that run's "
                        "settings, or train into a new folder (hydra.run.dir / hydra.sweep.dir)")


def identity(cfg: DictConfig, choices: DictConfig) -> dict[str, Any]:
    """What makes a run this run, as flat dotted keys: group choices, their resolved keys, the seed, the trainer's."""
    out: dict[str, Any] = {}
    for group in GROUPS:
        out[group] = choices.get(group)
        out.update(_flat(group, _resolved(cfg, group)))
    out["seed"] = cfg.get("seed")
    for key in TRAINER_KEYS:
        out[f"trainer.{key}"] = cfg.trainer.get(key)
    return out


def _group_of(key: str) -> str | None:
    """The group a dotted key belongs to ("model" for "model.width"); None for a group itself and other keys."""
    head = key.split(".")[0]
    return head if head in GROUPS and head != key else None


def _resolved(cfg: DictConfig, key: str) -> Any:
    node = cfg.get(key)
    if not isinstance(node, DictConfig):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException:  # e.g. ${hydra:...} in a saved config, which has no hydra node
        return OmegaConf.to_container(node, resolve=False)


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in LOCATION_KEYS:
            out.update(_flat(f"{prefix}.{key}", item))
    return out
