"""Every metric regbench reports, each with its function and the direction in which it is better (so that tables know
which way "better" points), and the one function that names the figures a result gives: `named`.

A metric of predicted probabilities that every scoring pass computes has per-sample `terms` whose mean it is, or is
a function `of_bins` of the calibration bins; `tally` gives those sums, which add over batches and over data-parallel
ranks, and `from_tally` turns them into the metrics. A metric that needs the whole split at once (adaptive ECE, AURC)
is a function `of_log_probs` of every sample's float64 log-probabilities, computed where every sample is kept
(`regbench eval`): `ranked`. Adding a metric is one entry in METRICS and its function
(docs/eval_export.md#adding-a-metric).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from regbench.errors import UserError
# re-exported: every metric's function is found here, regbench.metrics.accuracy as regbench.metrics.auroc
from regbench.metrics.classification import (ECE_BINS, accuracy, brier, calibration_bins,  # noqa: F401
                                             confusion_matrix, ece, ece_of_bins, hits, log_losses, log_softmax,
                                             logit_log_losses, nll, nll_terms, squared_errors)
from regbench.metrics.corruption import SEVERITIES, mce, mean_corruption_error, relative_mce  # noqa: F401
from regbench.metrics.detection import (OOD_SCORES, aupr_in, aupr_out, auroc, fpr95, mean_log_probs,  # noqa: F401
                                        mutual_information, ood_scores)
from regbench.metrics.selective import adaptive_ece, aurc, selective_risk

Terms = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]  # (probs, labels, logits or None)

# the records that keep a result's figures (Metric.records), each named `named(start, record, values)`:
#   evaluation   every evaluation of the val split during training (metrics.jsonl: val_*) and `regbench eval`'s split
#                (eval.json: <split>_*, final_<split>_* of the last checkpoint)
#   test         summary.json: test_* of the best checkpoint, final_test_* of the weights training ended with
#   train_eval   the training split scored in eval mode at every evaluation (trainer.eval_train: train_eval_*)
#   temperature  `regbench eval --temperature-scale`: ts_<split>_* after the temperature fitted on val
#   corruption   each corruption x severity of `regbench eval --corruptions` (corruptions.json), and their means over
#                a set of corruptions (eval.json: corruption_*, extra_corruption_*, ...)
#   baseline     `regbench eval --corruptions --baseline`: each set's errors against the baseline run's (mce, ...)
#   ood          `regbench eval --ood`: ood_*, the in-distribution split against the OOD dataset's by the maximum
#                softmax, ood_entropy_* by the predictive entropy (ood_mi_* by mutual information under MC)
#   ranking      `regbench eval`'s split, of every sample's log-probabilities (eval.json: <split>_aece, ...), and
#                every family below
#   averaged     the probabilities averaged over passes (mc8_<split>_*), over runs (ensemble_<split>_*) or of attacked
#                images (fgsm_0.03_<split>_*): no training loss to report
RECORDS = ("evaluation", "test", "train_eval", "temperature", "corruption", "baseline", "ood", "ranking", "averaged")
FINAL = "final"  # what starts the figures of a run's last weights (final_test_acc), beside its best checkpoint's


def probabilities_only(terms: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Terms:
    """Per-sample terms of the probabilities alone, as Metric.terms takes them (the logits, if any, unused)."""
    return lambda probs, labels, logits: terms(probs, labels)


@dataclass(frozen=True)
class Metric:
    """A metric: which way is better, how it is computed, and which records keep it (RECORDS)."""
    higher_is_better: bool
    function: Callable[..., Any] | None = None  # (probs, labels) for a metric of probabilities; None: none needed
    terms: Terms | None = None  # its per-sample terms: every scoring pass computes their mean
    of_bins: Callable[[np.ndarray], float] | None = None  # or its value from the calibration bins (ECE)
    # or (log-probabilities [N, C], labels) -> value, of the whole split: computed by `ranked`, not by a tally
    of_log_probs: Callable[[np.ndarray, np.ndarray], float] | None = None
    records: tuple[str, ...] = ()
    short: str | None = None  # how figure names spell it, when not by its name

    @property
    def scored(self) -> bool:
        """Whether every scoring pass computes it (from the tally)."""
        return self.terms is not None or self.of_bins is not None


METRICS: dict[str, Metric] = {
    # the training objective: label smoothing included when the run trained with it
    "loss": Metric(False, records=("evaluation", "train_eval")),
    # a temperature keeps every top class: no ts_*_acc
    "accuracy": Metric(True, accuracy, terms=probabilities_only(hits), short="acc",
                       records=("evaluation", "test", "train_eval", "corruption", "averaged")),
    "ece": Metric(False, ece, of_bins=ece_of_bins,
                  records=("evaluation", "test", "temperature", "corruption", "averaged")),
    "nll": Metric(False, nll, terms=nll_terms, records=("evaluation", "test", "temperature", "corruption", "averaged")),
    "brier": Metric(False, brier, terms=probabilities_only(squared_errors),
                    records=("evaluation", "test", "temperature", "averaged")),
    # of the whole split's log-probabilities (regbench/metrics/selective.py): adaptive ECE over 15 equal-mass bins,
    # the area under the risk-coverage curve, the error of the 80% most confident samples
    "aece": Metric(False, of_log_probs=adaptive_ece, records=("ranking",)),
    "aurc": Metric(False, of_log_probs=aurc, records=("ranking",)),
    "risk80": Metric(False, of_log_probs=selective_risk, records=("ranking",)),
    # figures of `regbench eval` that probabilities of one split alone do not give (docs/robustness.md)
    "error": Metric(False, mean_corruption_error, records=("corruption",)),  # the mean error under corruption
    "mce": Metric(False, mce, records=("baseline",)),  # Hendrycks & Dietterich's mCE against a baseline run
    "relative_mce": Metric(False, relative_mce, records=("baseline",)),  # the errors less the clean error
    "auroc": Metric(True, auroc, records=("ood",)),  # in-distribution against OOD by maximum softmax probability
    "aupr_in": Metric(True, aupr_in, records=("ood",)),  # area under precision-recall, in-distribution as positive
    "aupr_out": Metric(True, aupr_out, records=("ood",)),  # OOD as positive
    "fpr95": Metric(False, fpr95, records=("ood",)),  # the OOD fraction taken as in-distribution at 95% TPR
}


def recorded(record: str) -> tuple[str, ...]:
    """The metrics `record` keeps, in the order of METRICS."""
    if record not in RECORDS:
        raise ValueError(f"unknown record {record!r}; known: {', '.join(RECORDS)}")
    return tuple(name for name, metric in METRICS.items() if record in metric.records)


def prefix(*parts: str) -> str:
    """The parts that start a figure's name, joined: prefix(FINAL, "ts", "test") == "final_ts_test"."""
    return "_".join(part for part in parts if part)


def figure_name(start: str, metric: str) -> str:
    """`metric`'s figure after `start`: test_acc, final_ood_auroc, mce (no start)."""
    return prefix(start, METRICS[metric].short or metric)


def named(start: str, record: str, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The figures `record` keeps of a result, `values` by metric (e.g. Scores.figures), named after `start`:
    named("final_test", "test", scores.figures) == {"final_test_acc": ..., "final_test_ece": ...}; each None when
    there is no result."""
    return {figure_name(start, m): None if values is None else values[m] for m in recorded(record)}


def _scored() -> list[tuple[str, Metric]]:
    return [(name, metric) for name, metric in METRICS.items() if metric.scored]


def tally_size() -> int:
    """The length of a `tally`."""
    return 1 + sum(metric.terms is not None for _, metric in _scored()) + 3 * ECE_BINS


def tally(probs: np.ndarray, labels: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
    """Every sum the scored metrics need, flat: [N, the sum of each one's terms, then calibration_bins]; the
    log-likelihoods of `logits` (whose softmax `probs` is) when given."""
    sums = [len(labels), *(metric.terms(probs, labels, logits).sum() for _, metric in _scored() if metric.terms)]
    return np.concatenate([sums, calibration_bins(probs, labels).ravel()])


def tally_bins(sums: np.ndarray) -> np.ndarray:
    """The calibration bins [3, ECE_BINS] of a tally (or the sum of several)."""
    return np.reshape(sums[-3 * ECE_BINS:], (3, -1))


def from_tally(sums: np.ndarray) -> dict[str, float]:
    """Every scored metric by name (accuracy, ece, nll, brier, ...) from a tally (or the sum of several)."""
    n, figures, at = sums[0], {}, 1
    for name, metric in _scored():
        if metric.terms is not None:
            figures[name], at = float(sums[at] / n), at + 1
        else:
            figures[name] = metric.of_bins(tally_bins(sums))
    return figures


def detection(in_logits: np.ndarray, out_logits: np.ndarray, score: str = "msp") -> dict[str, float]:
    """Every OOD figure (AUROC, AUPR-In, AUPR-Out, FPR at 95% TPR) of the detection of the samples of `out_logits`
    against those of `in_logits` (logits or log-probabilities) by the OOD score `score` of OOD_SCORES (the maximum
    softmax probability by default; regbench.metrics.detection)."""
    return detection_of_scores(*ood_scores(in_logits, out_logits, OOD_SCORES[score]))


def detection_of_scores(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, float]:
    """Every OOD figure of scores that are higher for what looks in-distribution."""
    return {name: METRICS[name].function(in_scores, out_scores) for name in recorded("ood")}


def ranked(log_probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric of the whole split's float64 log-probabilities [N, C] (of_log_probs) by name."""
    return {name: m.of_log_probs(log_probs, labels) for name, m in METRICS.items() if m.of_log_probs is not None}


def averaged(log_probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The figures of the `averaged` and `ranking` records of probabilities given as float64 log-probabilities
    [N, C] (e.g. of softmaxes averaged over passes or runs): every scored metric and every ranked one."""
    figures = from_tally(tally(np.exp(log_probs).astype(np.float32), labels, logits=log_probs))
    return {**{m: figures[m] for m in recorded("averaged")}, **ranked(log_probs, labels)}


def metric_of(figure: str) -> Metric:
    """The metric a stored figure measures, by its ending: `test_ece`, `best_val_acc`, `final_test_nll`,
    `val_loss`, `accuracy`, `ood_aupr_in`; a `max:`/`last:` prefix or an `@EPOCH` suffix (report's syntax) is
    ignored."""
    stem = figure.rpartition(":")[2].partition("@")[0]
    spelled = {**{name: name for name in METRICS}, **{m.short: name for name, m in METRICS.items() if m.short}}
    for word in sorted(spelled, key=len, reverse=True):  # aupr_in before a shorter name it ends with
        if stem == word or stem.endswith(f"_{word}"):
            return METRICS[spelled[word]]
    raise UserError(f"{figure!r} names no known metric: it must end with one of "
                    f"{', '.join(sorted(spelled))} (e.g. test_acc, test_ece, val_nll, ood_auroc)")
