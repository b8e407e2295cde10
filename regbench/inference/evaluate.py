"""`regbench eval`: a run's checkpoint scored on a split — accuracy, loss, calibration (ECE, NLL, Brier, reliability
diagram), per-class accuracy, speed, confusions — and each analysis the request asks for (temperature scaling,
corruptions, OOD detection); for one run or every completed run of a sweep, the figures kept in each run's eval.json.

An evaluation is composed of parts: the checks of the request, one scoring of the run's split, its figures, each
analysis (inference/analysis.py says how to add one), and the storage of every figure with what it came from."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from regbench import metrics
from regbench.errors import UserError
from regbench.atomic_files import atomic_write
from regbench.inference.analysis import Analysis, Context, Families
from regbench.inference.figures import calibration_line, plot_confusion, plot_reliability
from regbench.inference.attack import ATTACK
from regbench.inference.mc import MC
from regbench.inference.ood import OOD
from regbench.inference.request import EvalRequest
from regbench.inference.robustness import CORRUPTION
from regbench.inference.trained_run import saved_config
from regbench.inference.scorer import scorer, split_of
from regbench.inference.temperature import TEMPERATURE
from regbench.run_dir import EVALUATED, SUMMARY, confusion_png, read_json, reliability_png, sweep_runs
from regbench.run_dir.evaluated import checkpoint_stamp, scored_before, store_evaluation

if TYPE_CHECKING:
    from regbench.scoring import Scores

# the optional analyses, in the order of their parts in the JSON line (and of their options in eval_args.json)
ANALYSES: tuple[Analysis, ...] = (TEMPERATURE, CORRUPTION, OOD, MC, ATTACK)


def check(request: EvalRequest) -> None:
    """Refuse a request that cannot be served, before anything is read."""
    if request.save_probs is not None and request.save_probs.is_dir():
        raise UserError(f"--save-probs {request.save_probs} is a folder: give a file, e.g. "
                        f"{request.save_probs / 'probs.npz'}")
    for analysis in ANALYSES:
        if analysis.check is not None:
            analysis.check(request)


def arguments(run: Path, request: EvalRequest) -> dict[str, Any]:
    """What an evaluation of `run` computes from, as eval_args.json records it: the checkpoint, its file's stamp, the
    split, the overrides, and each analysis's options (the corruption files' fingerprint, the baseline's stamp)."""
    found = dict(checkpoint=request.checkpoint, stamp=checkpoint_stamp(run, request.checkpoint), split=request.split,
                 overrides=list(request.overrides))
    for analysis in ANALYSES:
        found.update(analysis.arguments(run, request))
    return found


def evaluate_run(run: Path, request: EvalRequest) -> dict[str, Any]:
    """Score the run's checkpoint on a split as its trainer scored it (its device, AMP mode, batches and loss); write
    the confusion-matrix and reliability-diagram PNGs (and the probabilities when asked); run each analysis asked for;
    merge the figures into the run's eval.json, each family with what it was computed from, and return them all."""
    check(request)
    cfg = saved_config(run, list(request.overrides))
    ctx = Context(run, request, cfg, *split_of(cfg, request.split))
    steps = {analysis.key: analysis.prepare(ctx) for analysis in ANALYSES}  # each checks before any scoring
    scored, device = scorer(cfg, run, request.checkpoint)
    scores = scored(ctx.split)
    ranked = metrics.ranked(metrics.log_softmax(scores.logits), scores.labels)
    result = {**scoring_result(ctx, scores, device, *draw(ctx, scores)), **ranked}
    if request.save_probs is not None:
        result["probs_file"] = save_probs(request.save_probs, scores)
    family = metrics.prefix(ctx.start, ctx.split_name)
    families: Families = {family: dict(ctx.source, figures={**metrics.named(family, "evaluation", scores.figures),
                                                            **metrics.named(family, "ranking", ranked)})}
    for key, step in steps.items():
        if step is not None:
            result[key], found = step(scores, scored)
            families.update(found)
    store_evaluation(run, families, arguments(run, request))
    return result


def draw(ctx: Context, scores: Scores) -> tuple[np.ndarray, Path, Path]:
    """The confusion matrix of the scored split, and (its PNG, the reliability diagram's PNG)."""
    counts = metrics.confusion_matrix(scores.labels, scores.probs.argmax(axis=1), len(ctx.classes))
    checkpoint, name = ctx.request.checkpoint, ctx.split_name
    confusion = ctx.request.output or ctx.run / confusion_png(name, checkpoint)
    plot_confusion(confusion, counts, ctx.classes, f"{ctx.heading}: accuracy {scores.accuracy:.4f} (n={scores.n})")
    reliability = ctx.figure(reliability_png(name, checkpoint))
    plot_reliability(reliability, scores.bins, f"{ctx.heading}\n{calibration_line(scores.figures, scores.n)}")
    return counts, confusion, reliability


def scoring_result(ctx: Context, scores: Scores, device: str, counts: np.ndarray, confusion: Path,
                   reliability: Path) -> dict[str, Any]:
    """The JSON line's figures of the scored split."""
    per_class = counts.diagonal() / np.maximum(counts.sum(axis=1), 1)
    # accuracy and loss first, then the other figures (a dict display keeps the first place of a repeated key)
    figures = {"accuracy": scores.accuracy, "loss": scores.loss, **scores.figures}
    return dict(run=str(ctx.run), checkpoint=ctx.request.checkpoint, split=ctx.split_name, n=scores.n,
                skipped=len(ctx.split) - scores.n, **figures,
                per_class_accuracy={c: (float(a) if counts[i].sum() else None)
                                    for i, (c, a) in enumerate(zip(ctx.classes, per_class))},
                device=device, eval_img_per_s=round(scores.n / max(scores.seconds, 1e-9), 1),
                confusion_png=str(confusion), reliability_png=str(reliability))


def save_probs(path: Path, scores: Scores) -> str:
    """The scored split's probabilities and labels as an .npz at `path`; returns its path."""
    with atomic_write(path, "wb") as f:
        np.savez(f, probs=scores.probs, labels=scores.labels.astype(np.int64))
    return str(path)


def evaluate(target: Path, request: EvalRequest, note: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """`regbench eval TARGET`: the result of the run `target`, or of each run of the sweep `target` not yet
    evaluated (`evaluate_sweep`)."""
    runs = sweep_runs(target)
    if runs is None:
        yield evaluate_run(target, request)
        return
    if request.output or request.save_probs:
        raise UserError("--output and --save-probs name one file, so they score one run: pass a run folder, not a "
                        "sweep folder")
    yield from evaluate_sweep(runs, request, note)


def evaluate_sweep(runs: list[Path], request: EvalRequest, note: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """`evaluate_run` on each completed run of a sweep, except those already evaluated with the same arguments;
    one `note` per run left out."""
    for run in runs:
        status = str((read_json(run / SUMMARY) or {}).get("status", "missing"))
        if status != "completed":
            note(f"{run}: skipped, not completed ({status})")
        elif scored_before(run, arguments(run, request)):
            note(f"{run}: skipped, already evaluated with these arguments (its {EVALUATED} has the figures)")
        else:
            yield evaluate_run(run, request)
