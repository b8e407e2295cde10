"""`regbench eval --ensemble RUN RUN...`: a deep ensemble of runs (Lakshminarayanan et al. 2017), typically one
row's seeds: their softmaxes averaged on the same split and scored like one run's, with every metric of averaged
probabilities and, with --ood, OOD detection by the mean's maximum softmax, its entropy and the mutual information
between prediction and member. Runs of another dataset, split seed or class count are refused."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig

from regbench import metrics
from regbench.errors import UserError
from regbench.identity import identity
from regbench.inference.analysis import Context, Families
from regbench.data.splits import Split
from regbench.inference.ood import detection_part, ood_split
from regbench.inference.request import EvalRequest
from regbench.inference.robustness import corruption_family
from regbench.inference.scorer import Scorer, scorer, split_of
from regbench.inference.trained_run import saved_config
from regbench.run_dir.evaluated import checkpoint_stamp, store_evaluation

if TYPE_CHECKING:
    from regbench.scoring import Scores

SPLIT_SEED = "dataset.split_seed"
TRAINING_ONLY = ("dataset.augment", "dataset.crop_padding", "dataset.resized_crop_scale")  # never reach a scoring
# what --ensemble does not combine with: each scores one run's checkpoint in a way an average of runs does not have
ALONE = {"temperature_scale": "--temperature-scale", "baseline": "--baseline", "mc_samples": "--mc-samples",
         "attacks": "--attack", "save_probs": "--save-probs", "output": "--output"}


def dataset_identity(cfg: DictConfig) -> dict[str, Any]:
    """The keys that make a run's dataset the dataset it is (its RESULT keys), less the split seed (wherever a
    loader repeats it) and the training-time augmentations."""
    return {k: v for k, v in identity(cfg, {}).items()
            if k.startswith("dataset.") and not k.endswith("split_seed") and not k.startswith(TRAINING_ONLY)}


def check_members(runs: list[Path], cfgs: list[DictConfig]) -> None:
    """Refuse runs whose dataset or split seed differ from the first's, naming the first difference."""
    ours = dataset_identity(cfgs[0])
    for run, cfg in zip(runs[1:], cfgs[1:]):
        if cfg.dataset.split_seed != cfgs[0].dataset.split_seed:
            raise UserError(f"--ensemble: {run} has {SPLIT_SEED}={cfg.dataset.split_seed} but {runs[0]} has "
                            f"{cfgs[0].dataset.split_seed}: their val and test splits hold other images")
        theirs = dataset_identity(cfg)
        for key in sorted(set(ours) | set(theirs)):
            if ours.get(key) != theirs.get(key):
                raise UserError(f"--ensemble: {run} has {key}={theirs.get(key)!r} but {runs[0]} has "
                                f"{ours.get(key)!r}: ensemble runs of one dataset")


def ensemble_scorer(members: list[Scorer]) -> Scorer:
    """A scorer of the mean softmax of the members' on a split."""
    from regbench.scoring import averaged_scores

    def scored(split: Split) -> Scores:
        start = time.perf_counter()
        each = [member(split) for member in members]
        log_probs = np.stack([metrics.log_softmax(scores.logits) for scores in each])
        return averaged_scores(metrics.mean_log_probs(log_probs), each[0].labels, time.perf_counter() - start)

    return scored


def _of_members(families: Families, provenance: dict[str, Any]) -> Families:
    """`families` computed from the members, `provenance` (members, stamps) for the first run's stamp."""
    return {name: {**{k: v for k, v in entry.items() if k != "stamp"}, **provenance}
            for name, entry in families.items()}


def ensemble_arguments(runs: list[Path], request: EvalRequest) -> dict[str, Any]:
    """What an ensemble of `runs` computes from, as each member's eval_args.json records it: the members, their
    checkpoint files' stamps, the split, the overrides and the analyses asked for."""
    return dict(ensemble=[str(run) for run in runs], checkpoint=request.checkpoint,
                stamps=[checkpoint_stamp(run, request.checkpoint) for run in runs], split=request.split,
                overrides=list(request.overrides), ood=request.ood,
                corruptions=None if request.corruptions is None else str(request.corruptions))


def evaluate_ensemble(runs: list[Path], request: EvalRequest) -> dict[str, Any]:
    """Score the mean softmax of `runs`' checkpoints on their common split (and OOD split); store the figures as the
    family ensemble_<split> in every member's eval.json; return them."""
    asked = [flag for key, flag in ALONE.items() if getattr(request, key)]
    if asked:
        raise UserError(f"--ensemble scores the mean of runs' softmaxes, without {', '.join(asked)}: evaluate the "
                        "runs one by one for those")
    if len(set(runs)) < 2:
        raise UserError("--ensemble needs at least two different run folders, e.g. a row's seeds")
    cfgs = [saved_config(run, list(request.overrides)) for run in runs]
    check_members(runs, cfgs)
    found = [split_of(cfg, request.split) for cfg in cfgs]
    for run, (_, _, classes) in zip(runs[1:], found[1:]):
        if len(classes) != len(found[0][2]):
            raise UserError(f"--ensemble: {run} has {len(classes)} classes but {runs[0]} has {len(found[0][2])}")
    ood = ood_split(cfgs[0].dataset, request.ood) if request.ood is not None else None
    members, outs, labels, scorers = [], [], None, []
    for run, cfg, (_, split, _) in zip(runs, cfgs, found):
        scored = scorer(cfg, run, request.checkpoint)[0]
        scorers.append(scored)
        scores = scored(split)
        if labels is not None and not np.array_equal(labels, scores.labels):
            raise UserError(f"--ensemble: {run} scored other images than {runs[0]} (unreadable ones skipped?)")
        members.append(metrics.log_softmax(scores.logits))
        labels = scores.labels
        if ood is not None:
            outs.append(metrics.log_softmax(scored(ood[1]).logits))
    ctx = Context(runs[0], request, cfgs[0], found[0][0], found[0][1], found[0][2])
    mean = metrics.mean_log_probs(np.stack(members))
    figures = metrics.averaged(mean, labels)
    family = metrics.prefix(ctx.start, "ensemble", ctx.split_name)
    provenance = dict(ctx.source, members=[str(run) for run in runs],
                      stamps=[checkpoint_stamp(run, request.checkpoint) for run in runs])
    provenance.pop("stamp")
    families: Families = {family: dict(provenance, figures={**metrics.named(family, "averaged", figures),
                                                           **metrics.named(family, "ranking", figures)})}
    result = dict(runs=[str(run) for run in runs], checkpoint=request.checkpoint, split=ctx.split_name,
                  n=len(labels), **figures)
    if ood is not None:
        out = np.stack(outs)
        detected = {score: metrics.detection(mean, metrics.mean_log_probs(out), score) for score in metrics.OOD_SCORES}
        detected["mi"] = metrics.detection_of_scores(-metrics.mutual_information(np.stack(members)),
                                                     -metrics.mutual_information(out))
        result["ood"], ood_family = detection_part(ctx, ood[0], len(labels), out.shape[1], detected, "ensemble")
        families.update(_of_members(ood_family, provenance))
    if request.corruptions is not None:
        result["corruptions"], corrupted = corruption_family(ctx, ensemble_scorer(scorers), "ensemble",
                                                             1 - figures["accuracy"])
        families.update(_of_members(corrupted, provenance))
    for run in runs:
        store_evaluation(run, families, ensemble_arguments(runs, request))
    return result
