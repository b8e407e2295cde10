"""Scoring a model on a split: the loader that batches a split for scoring, and the one pass that scores a model over
it.

The trainer's evaluations, `regbench eval` and `regbench export`'s check all build their loaders and score here, so
that each figure is computed one way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import paddle
import paddle.nn.functional as F
from omegaconf import DictConfig

from regbench import metrics
from regbench.data.batches import BatchLoader
from regbench.data.splits import Split
from regbench.device import AMP_DTYPES, sum_over_ranks
from regbench.reg.mixed_targets import loss_fn


@dataclass(frozen=True)
class Scores:
    """What one pass over a split measured (summed over the data-parallel ranks)."""
    # by metric: `loss`, the mean loss, label smoothing included, as training minimizes it; then every metric of
    # regbench.metrics that a scoring computes (accuracy, ece, nll, brier, ...), of the softmax of the logits in
    # float32 (the NLL of the logits' float64 log-softmax, never label-smoothed)
    figures: dict[str, float]
    bins: np.ndarray  # [3, ECE_BINS]: sample count, confidence sum and hit sum per confidence bin
    n: int           # the samples scored: the split's, less those unreadable (dataset.on_bad_image=skip)
    seconds: float   # wall time of the pass: batches, forward passes, loss and metrics
    logits: np.ndarray | None = None  # float32 [n, classes] of this rank's samples scored, in split order, when asked
    probs: np.ndarray | None = None   # float32 [n, classes]: their softmax, from which the metrics were computed
    labels: np.ndarray | None = None  # int64 [n]: their labels

    @property
    def loss(self) -> float:
        return self.figures["loss"]

    @property
    def accuracy(self) -> float:
        return self.figures["accuracy"]


def averaged_scores(log_probs: np.ndarray, labels: np.ndarray, seconds: float) -> Scores:
    """The Scores of probabilities given as float64 log-probabilities [n, C] (e.g. a mean over MC passes or runs):
    every scored metric, `loss` the NLL (no label smoothing: there is no one training objective)."""
    probs = np.exp(log_probs).astype(np.float32)
    sums = metrics.tally(probs, labels, logits=log_probs)
    figures = metrics.from_tally(sums)
    return Scores(figures=dict(loss=figures["nll"], **figures), bins=metrics.tally_bins(sums), n=len(labels),
                  seconds=seconds, logits=log_probs, probs=probs, labels=labels)


def eval_loader(dataset: DictConfig, trainer: DictConfig, split: Split, shard: tuple[int, int] = (0, 1),
                batch_size: int | None = None, workers: int = 0) -> BatchLoader:
    """`split` in order, unaugmented, in batches of trainer.eval_batch_size (or `batch_size`), every sample once;
    a streamed split read by `workers` processes (0: this one)."""
    return BatchLoader(split, batch_size=batch_size or trainer.eval_batch_size, mean=list(dataset.mean),
                       std=list(dataset.std), crop_padding=dataset.crop_padding,
                       resized_crop_scale=tuple(dataset.resized_crop_scale), shard=shard, even_shards=False,
                       workers=workers)


def score(model: paddle.nn.Layer, loader: BatchLoader, smoothing: float, amp: str, per_sample: bool = False,
          mode: Callable[[paddle.nn.Layer], None] | None = None) -> Scores:
    """Score `model` over the loader's split in one pass: eval mode (or the layers' modes that `mode` sets, e.g.
    Monte-Carlo dropout's), no gradients, the forward pass in `amp` precision (off, fp16, bf16); with `per_sample`,
    keep every scored sample's logits, probabilities and label (a streamed split's unreadable images skipped,
    dataset.on_bad_image=skip)."""
    if mode is None:
        model.eval()
    else:
        mode(model)
    start = time.perf_counter()
    loss_sum = paddle.zeros([], dtype="float64")  # on the device: no copy per batch
    sums = np.zeros(metrics.tally_size())
    kept: list[tuple[np.ndarray, ...]] = []
    with paddle.no_grad():
        for images, labels in loader.epoch(seed=None):
            with paddle.amp.auto_cast(enable=amp != "off", dtype=AMP_DTYPES.get(amp, "float16")):
                out = model(images).astype("float32")
            loss_sum += loss_fn(out, labels, smoothing, reduction="none").astype("float64").sum()
            batch_logits, batch_probs, batch_labels = out.numpy(), F.softmax(out, axis=1).numpy(), labels.numpy()
            sums += metrics.tally(batch_probs, batch_labels, logits=batch_logits)
            if per_sample:
                kept.append((batch_logits, batch_probs, batch_labels))
    loss, *totals = sum_over_ranks([loss_sum.item(), *sums.tolist()])  # ECE of the pooled bins, not a mean of ranks'
    totals = np.array(totals)
    n = int(totals[0])
    logits, probs, labels = (np.concatenate(column) for column in zip(*kept)) if per_sample else (None,) * 3
    return Scores(figures=dict(loss=loss / n, **metrics.from_tally(totals)), bins=metrics.tally_bins(totals), n=n,
                  seconds=time.perf_counter() - start, logits=logits, probs=probs, labels=labels)
