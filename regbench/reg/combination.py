"""The reg options a composed `reg` node combines (each records itself in reg.owns): their label, and whether they may
combine."""
from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig

from regbench.errors import UserError

NONE = "none"


def names(reg: DictConfig) -> list[str]:
    """The reg options merged into `reg`, in command-line order (each records itself in reg.owns)."""
    return [str(name) for name in reg.get("owns") or {}]


def label(reg: DictConfig) -> str:
    """How tables, plots and summary.json name the combination: `dropblock+cutmix`, `dropout`, `none`."""
    return join(names(reg))


def join(options: Sequence[str]) -> str:
    """The label of reg options given in this order (`reg=[dropblock,cutmix]`: `dropblock+cutmix`)."""
    return "+".join(str(name) for name in options if name != NONE) or NONE


def check(reg: DictConfig) -> None:
    """Refuse a combination in which two options fill the same place (each would replace the other's layer)."""
    owner: dict[str, str] = {}
    for name, places in (reg.get("owns") or {}).items():
        for place in places or []:
            if place in owner:
                raise UserError(f"reg options {owner[place]} and {name} both fill the {place} place: combine "
                                f"options that fill different places (conf/reg/_base.yaml lists them)")
            owner[place] = str(name)
