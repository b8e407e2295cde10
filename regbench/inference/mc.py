"""`regbench eval --mc-samples N`: Monte-Carlo regularizers (Gal & Ghahramani 2016): the run's stochastic layers
(dropout, dropout2d, DropBlock at its final keep probability, DropPath) stay on at their trained rates while batch
norm and everything else stays in evaluation mode, and the N passes' softmaxes are averaged. Pass i draws its masks
from derive_seed(seeds.noise, MC_STREAM, i), so a rerun gives identical figures. Batch-level augmentations (Cutout,
Mixup, CutMix) never reach a scoring pass."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import paddle
import paddle.nn as nn
from omegaconf import DictConfig

from regbench import metrics
from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.inference.analysis import Analysis, Context, Families, Step
from regbench.inference.ood import detection_part, ood_split
from regbench.inference.robustness import corruption_family
from regbench.inference.request import EvalRequest
from regbench.inference.scorer import Scorer
from regbench.reg.dropblock import DropBlock
from regbench.reg.droppath import DropPath
from regbench.reg.progress import following_progress
from regbench.train.loop import derive_seed

if TYPE_CHECKING:
    from regbench.scoring import Scores

MC_STREAM = 2  # derive_seed's key of MC passes: training's masks use 1, so no pass repeats a training step's masks


def _rate(layer: nn.Layer) -> float:
    """A stochastic layer's drop rate (0 for any other layer)."""
    if isinstance(layer, (nn.Dropout, nn.Dropout2D)):
        return float(layer.p)
    return float(layer.drop_rate) if isinstance(layer, (DropBlock, DropPath)) else 0.0


def stochastic_layers(model: nn.Layer) -> list[nn.Layer]:
    """The layers of `model` that drop at a rate > 0 in training, DropBlock at its final keep probability (the
    progress of training set to its end)."""
    for layer in following_progress(model):
        layer.set_progress(1.0)
    return [layer for layer in model.sublayers(include_self=True) if _rate(layer) > 0]


def samples_stochastically(cfg: DictConfig) -> bool:
    """Whether the model of a run's config has a stochastic layer for MC passes to keep on."""
    from regbench.models import build_model

    return bool(stochastic_layers(build_model(cfg.model, cfg.act, cfg.reg)))


def stochastic(model: nn.Layer) -> None:
    """Evaluation mode but for the stochastic layers, which drop as in training."""
    model.eval()
    for layer in stochastic_layers(model):
        layer.training = True


def pass_seed(noise_seed: int, index: int) -> int:
    """The seed of MC pass `index` (0-based)."""
    return derive_seed(noise_seed, MC_STREAM, index)


def mc_passes(scored: Scorer, split: Split, samples: int, noise_seed: int,
              mode: Callable[[nn.Layer], None] = stochastic) -> tuple[np.ndarray, np.ndarray]:
    """(float64 log-probabilities [samples, n, C] of each pass over `split` in `mode`, the labels [n])."""
    passes, labels = [], None
    for index in range(samples):
        paddle.seed(pass_seed(noise_seed, index))
        scores = scored(split, mode=mode)
        passes.append(metrics.log_softmax(scores.logits))
        labels = scores.labels
    return np.stack(passes), labels


def mc_scorer(scored: Scorer, samples: int, noise_seed: int) -> Scorer:
    """A scorer of the mean softmax of `samples` stochastic passes (as `mc_passes` draws them) over a split."""
    from regbench.scoring import averaged_scores

    def mc_scored(split: Split) -> Scores:
        start = time.perf_counter()
        passes, labels = mc_passes(scored, split, samples, noise_seed)
        return averaged_scores(metrics.mean_log_probs(passes), labels, time.perf_counter() - start)

    return mc_scored


def _arguments(run: Path, request: EvalRequest) -> dict[str, Any]:
    return {} if request.mc_samples is None else dict(mc_samples=request.mc_samples)


def _check(request: EvalRequest) -> None:
    if request.mc_samples is not None and request.mc_samples < 1:
        raise UserError(f"--mc-samples {request.mc_samples}: give the number of stochastic passes, at least 1 "
                        "(e.g. --mc-samples 8)")


def _prepare(ctx: Context) -> Step | None:
    samples = ctx.request.mc_samples
    if samples is None:
        return None
    if not samples_stochastically(ctx.cfg):
        raise UserError(f"--mc-samples: the model of {ctx.run} has no stochastic layer (dropout, dropout2d, "
                        "dropblock or droppath at a rate > 0) to keep on; evaluate it without --mc-samples")
    ood = ood_split(ctx.cfg.dataset, ctx.request.ood) if ctx.request.ood is not None else None
    start, noise = f"mc{samples}", int(ctx.cfg.seeds.noise)

    def step(scores: Scores, scored: Scorer) -> tuple[dict[str, Any], Families]:
        """N stochastic passes over the split (and the OOD split): the averaged softmax's figures."""
        passes, labels = mc_passes(scored, ctx.split, samples, noise)
        figures = metrics.averaged(metrics.mean_log_probs(passes), labels)
        family = metrics.prefix(ctx.start, start, ctx.split_name)
        part: dict[str, Any] = dict(samples=samples, noise_seed=noise, **figures)
        found: Families = {family: dict(ctx.source, mc_samples=samples, figures={
            **metrics.named(family, "averaged", figures), **metrics.named(family, "ranking", figures)})}
        if ood is not None:
            name, images = ood
            out = mc_passes(scored, images, samples, noise)[0]
            detected = {score: metrics.detection(metrics.mean_log_probs(passes), metrics.mean_log_probs(out), score)
                        for score in metrics.OOD_SCORES}
            detected["mi"] = metrics.detection_of_scores(-metrics.mutual_information(passes),
                                                         -metrics.mutual_information(out))
            part["ood"], ood_family = detection_part(ctx, name, len(labels), out.shape[1], detected, start)
            found.update(ood_family)
        if ctx.request.corruptions is not None:
            part["corruptions"], corrupted = corruption_family(ctx, mc_scorer(scored, samples, noise), start,
                                                               1 - figures["accuracy"])
            found.update(corrupted)
        return part, found

    return step


MC = Analysis("mc", _arguments, _prepare, _check)
