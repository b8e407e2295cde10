"""A run's checkpoint scored again on any split, as its trainer scored it: its device, AMP mode, batches and loss."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from omegaconf import DictConfig

from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.inference.trained_run import load_model

if TYPE_CHECKING:
    from regbench.scoring import Scores

# scores the run's checkpoint on a split, every sample kept; mode=FUNCTION sets the layers' modes (default: eval)
Scorer = Callable[..., "Scores"]


def split_of(cfg: DictConfig, name: str | None) -> tuple[str, Split, tuple[str, ...]]:
    """(name, split, class names): `name`, or by default the test split when the dataset has one distinct from
    val, else val."""
    from regbench.data import load_splits

    splits = load_splits(cfg.dataset)
    name = name or ("test" if splits.test is not None else "val")
    split = getattr(splits, name)
    if split is None:
        raise UserError("the run's dataset has no test split distinct from val: use --split val")
    return name, split, splits.classes


def scorer(cfg: DictConfig, run: Path, checkpoint: str) -> tuple[Scorer, str]:
    """(a function scoring the run's checkpoint on a split as its trainer scored it, the device it computes on)."""
    from regbench.scoring import eval_loader, score
    from regbench.train.compute import set_up

    tr = cfg.trainer
    compute = set_up(tr)
    model = load_model(cfg, run, checkpoint)
    compute.adapt(model)

    def scored(split: Split, **mode: Any) -> Scores:
        return score(model, eval_loader(cfg.dataset, tr, split), tr.label_smoothing, compute.amp, per_sample=True,
                     **mode)

    return scored, compute.device
