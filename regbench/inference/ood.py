"""Out-of-distribution detection by maximum softmax probability (Hendrycks & Gimpel 2017): the OOD dataset's split
as `regbench train` overrides compose it, and the detection figures, whose curves scikit-learn computes."""
from __future__ import annotations

import shlex

import numpy as np
from omegaconf import DictConfig, OmegaConf

from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.metrics import log_softmax

TPR = 0.95  # FPR at 95% TPR: the usual operating point


def detection(in_logits: np.ndarray, out_logits: np.ndarray) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out and FPR at 95% TPR of the maximum softmax probability as the score that a sample
    is in-distribution, in-distribution samples the positives (OOD the positives for AUPR-Out, score negated).

    The score is its log, the maximum float64 log-softmax of the logits: the same order, without the ties of float32
    probabilities, which are exactly 1 once the top logit leads by about 17 (float64 keeps leads apart up to ~745)."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    scores = np.concatenate([log_softmax(in_logits).max(axis=1), log_softmax(out_logits).max(axis=1)])
    is_in = np.concatenate([np.ones(len(in_logits), int), np.zeros(len(out_logits), int)])
    fpr, tpr, _ = roc_curve(is_in, scores, drop_intermediate=False)
    return dict(auroc=float(roc_auc_score(is_in, scores)), aupr_in=float(average_precision_score(is_in, scores)),
                aupr_out=float(average_precision_score(1 - is_in, -scores)),
                fpr95=float(fpr[np.searchsorted(tpr, TPR, side="left")]))


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
