"""`regbench eval --ood`: out-of-distribution detection by maximum softmax probability (Hendrycks & Gimpel 2017) and
by predictive entropy of another dataset's split, as `regbench train` overrides compose it (the figures:
regbench.metrics.detection)."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from regbench import metrics
from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.inference.analysis import Analysis, Context, Families, Step
from regbench.inference.request import EvalRequest
from regbench.inference.scorer import Scorer

if TYPE_CHECKING:
    from regbench.scoring import Scores


def ood_split(run_dataset: DictConfig, overrides: str) -> tuple[str, Split]:
    """(its dataset's name, the test split, or val when it has none) of the dataset that `overrides` (dataset keys
    only, as `regbench train` takes them) compose; its images must have the run's size and channels."""
    from regbench.config import compose, run_config
    from regbench.data import in_memory, load_splits

    words = shlex.split(overrides)
    foreign = [w for w in words if not w.lstrip("+~").split("=")[0].split(".")[0] == "dataset"]
    if not words or foreign:
        raise UserError(f"--ood {overrides!r}: give dataset overrides only, e.g. --ood dataset=cifar100 or "
                        f"--ood 'dataset=imagefolder dataset.root=DIR'")
    cfg = compose(words)
    dataset = OmegaConf.create(OmegaConf.to_container(run_config(cfg).dataset, resolve=True))
    ours = (run_dataset.image_size, run_dataset.channels)
    theirs = (dataset.image_size, dataset.channels)
    if ours != theirs:
        raise UserError(f"--ood {overrides!r} composes {theirs[0]}x{theirs[0]}x{theirs[1]} images but the run's "
                        f"are {ours[0]}x{ours[0]}x{ours[1]}: add dataset.image_size={ours[0]} "
                        f"dataset.channels={ours[1]} (if the dataset allows) or choose another")
    splits = load_splits(dataset)
    split = in_memory(splits.test if splits.test is not None else splits.val)
    # the OOD labels name classes the run never learned: scoring needs only the images
    return cfg.hydra.runtime.choices.dataset, Split(split.images, np.zeros(len(split), np.int64))


def _arguments(run: Path, request: EvalRequest) -> dict[str, Any]:
    return dict(ood=request.ood)


def _prepare(ctx: Context) -> Step | None:
    overrides = ctx.request.ood
    if overrides is None:
        return None
    name, images = ood_split(ctx.cfg.dataset, overrides)

    def step(scores: Scores, scored: Scorer) -> tuple[dict[str, Any], Families]:
        """Score the OOD split; detect it against the scored split."""
        out = scored(images)
        detected = {score: metrics.detection(scores.logits, out.logits, score) for score in metrics.OOD_SCORES}
        return detection_part(ctx, name, scores.n, out.n, detected)

    return step


def detection_part(ctx: Context, name: str, n_in: int, n_out: int,
                   detected: dict[str, dict[str, float]], start: str = "") -> tuple[dict[str, Any], Families]:
    """The JSON line's part and eval.json's family of the OOD figures `detected` by OOD score: ood_* by the maximum
    softmax ("msp"), ood_<score>_* by each other score, each after `start` (e.g. mc8)."""
    overrides = ctx.request.ood
    others = {score: figures for score, figures in detected.items() if score != "msp"}
    part = dict(dataset=name, overrides=overrides, n_in=n_in, n_out=n_out, in_distribution=ctx.split_name,
                positive="in-distribution (aupr_out: OOD)", **detected["msp"], by_score=others)
    family = metrics.prefix(ctx.start, start, "ood")
    figures = metrics.named(family, "ood", detected["msp"])
    for score, found in others.items():
        figures.update(metrics.named(metrics.prefix(family, score), "ood", found))
    return part, {family: dict(ctx.source, ood=overrides, figures=figures)}


OOD = Analysis("ood", _arguments, _prepare)
