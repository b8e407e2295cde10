"""A finished run folder: its saved config (plus overrides) and its model with a checkpoint's weights."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regbench.errors import UserError
from regbench.run_dir import CONFIG, HYDRA_DIR, checkpoint, checkpoint_file
from regbench.saved_config import read_saved_config
from regbench.schema import check

if TYPE_CHECKING:
    import paddle


def saved_config(run: Path, overrides: list[str]) -> DictConfig:
    """The run's `.hydra/config.yaml` (keys added since it was written back-filled: regbench.saved_config) with
    `key=value` overrides applied (keys must exist, groups stay as trained)."""
    if not run.is_dir():
        raise UserError(f"{run} is not a folder: pass a run folder (e.g. outputs/runs/<date>/<time>)")
    path = run / HYDRA_DIR / CONFIG
    try:
        cfg = read_saved_config(run)
    except FileNotFoundError:
        raise UserError(f"{run} has no {HYDRA_DIR}/{CONFIG}: pass the folder of one training run "
                        "(a sweep's runs are its numbered subfolders)") from None
    except (OSError, yaml.YAMLError, OmegaConfBaseException) as err:
        raise UserError(f"{path} is unreadable ({type(err).__name__}): the run folder is damaged") from None
    if not isinstance(cfg, DictConfig) or "model" not in cfg:
        raise UserError(f"{path} is not a regbench run config")
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise UserError(f"bad override: {str(err).splitlines()[0]}") from None
    for override in parsed:
        key = override.key_or_group
        if "." not in key or override.is_delete() or override.is_add() or override.is_sweep_override():
            raise UserError(f"{override.input_line!r}: give key=value overrides of the run's saved config "
                            "(e.g. dataset.data_file=PATH); its groups stay as trained")
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent)
        if not isinstance(node, DictConfig) or leaf not in node:
            raise UserError(f"unknown option {key!r} in the run's saved config")
        OmegaConf.update(cfg, key, override.value(), merge=False)
    check(cfg)
    return cfg


def load_model(cfg: DictConfig, run: Path, name: str) -> paddle.nn.Layer:
    """The run's model with the weights of checkpoints/<name>.npz, in eval mode."""
    from regbench.models import build_model
    from regbench.train.checkpoint import load_checkpoint

    model = build_model(cfg.model, cfg.act, cfg.reg)
    path = checkpoint(run, name)
    if not path.is_file():
        raise UserError(f"{run} has no {checkpoint_file(name)} (a run writes its checkpoints at its first "
                        "evaluation): pass another run or --checkpoint")
    try:
        state = load_checkpoint(path)[0]
    except UserError as err:  # its advice is about resuming; here another checkpoint or run is the way out
        raise UserError(f"{str(err).split(';')[0]}: pass another run or --checkpoint") from None
    expected = model.state_dict()
    wrong = sorted(k for k in expected if k not in state or list(state[k].shape) != list(expected[k].shape))
    if wrong or set(state) - set(expected):
        raise UserError(f"checkpoint {path} does not fit the model of the run's config "
                        f"({len(wrong)} missing or misshapen tensors, e.g. {(wrong or sorted(set(state) - set(expected)))[0]})")
    model.set_state_dict(state)
    model.eval()
    return model
