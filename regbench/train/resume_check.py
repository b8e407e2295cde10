"""Before a run resumes from its checkpoint: is it the run its folder holds? Checked against the folder's saved config
(Hydra's `.hydra/config.yaml`, keys added since it was written back-filled, and the group choices in
`.hydra/hydra.yaml`), before Hydra rewrites them."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regbench.errors import UserError
from regbench.identity import GROUPS, identity, length
from regbench import run_dir
from regbench.saved_config import read_saved_config

SHOWN = 4


def check_resume(cfg: DictConfig, folder: Path) -> None:
    """A UserError naming what differs when `cfg` resumes (trainer.resume=true) a checkpoint of another run."""
    if not cfg.trainer.resume or not run_dir.checkpoint(folder, run_dir.LAST).exists():
        return
    subdir = cfg.hydra.output_subdir or run_dir.HYDRA_DIR
    try:
        old = read_saved_config(folder, subdir)
        old_choices = OmegaConf.load(folder / subdir / run_dir.HYDRA_CONFIG).hydra.runtime.choices
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        print(f"regbench: warning: {folder} has a checkpoint but no saved config ({subdir}/{run_dir.CONFIG}): "
              "resuming without checking that it is the same run", file=sys.stderr)
        return
    before, after = identity(old, old_choices), identity(cfg, cfg.hydra.runtime.choices)
    changed = [k for k in dict.fromkeys([*before, *after]) if before.get(k, "<absent>") != after.get(k, "<absent>")]
    changed = [k for k in changed if _group_of(k) not in changed]  # a group chosen differently: name the choice
    changed = [k for k in changed if not _follows_seed(k, before, after, changed)]
    differences = [f"{k} {before.get(k, '<absent>')} → {after.get(k, '<absent>')}" for k in changed]
    new_length = length(cfg)
    for key, was in length(old).items():
        now = new_length[key]
        if now is not None and (was is None or now < was):
            differences.append(f"{key} {was} → {now} (a run may grow, not shrink)")
    summary = run_dir.read_json(folder / run_dir.SUMMARY) or {}
    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    if summary.get("world_size", world) != world:
        differences.append(f"data-parallel ranks {summary['world_size']} → {world}")
    if differences:
        shown = "; ".join(differences[:SHOWN]) + (f" and {len(differences) - SHOWN} more" if len(differences) > SHOWN else "")
        raise UserError(f"trainer.resume=true, but {folder} holds another run: {shown}. Resume with that run's "
                        "settings, or train into a new folder (hydra.run.dir / hydra.sweep.dir)")


def _follows_seed(key: str, before: dict, after: dict, changed: list[str]) -> bool:
    """A `seeds.*` key equal to `seed` on both sides (left to follow it): the change of `seed` names it."""
    return (key.startswith("seeds.") and "seed" in changed
            and before.get(key) == before.get("seed") and after.get(key) == after.get("seed"))


def _group_of(key: str) -> str | None:
    """The group a dotted key belongs to ("model" for "model.width"); None for a group itself and other keys."""
    head = key.split(".")[0]
    return head if head in GROUPS and head != key else None
