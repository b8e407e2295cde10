"""`regbench eval --corruptions`: a run scored on every corruption x severity of a folder in the CIFAR-10-C layout,
`corruptions.json` and the error heatmap in the run folder, the means over each set of corruptions (Hendrycks &
Dietterich's 15, the official folders' 4 extra ones, all), and against a baseline run, H&D's corruption errors and
relative corruption errors (the maths: regbench.metrics.corruption)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from omegaconf import DictConfig

from regbench import metrics
from regbench.data.cifar_c import COMMON, EXTRA, corruption_names, fingerprint, read_corruptions
from regbench.errors import UserError
from regbench.inference.analysis import Analysis, Context, Families, Step
from regbench.inference.figures import plot_heatmap
from regbench.inference.request import SETS, EvalRequest
from regbench.inference.trained_run import saved_config
from regbench.inference.scorer import Scorer, scorer, split_of
from regbench.metrics.corruption import corruption_errors, mean_corruption_error, relative_corruption_errors
from regbench.run_dir import CORRUPTIONS, checkpoint_file, heatmap_png, read_json, write_json
from regbench.run_dir.evaluated import checkpoint_stamp, qualifying, store_evaluation

if TYPE_CHECKING:
    from regbench.scoring import Scores

# what a stored result must match to stand for the scores of a checkpoint on a folder, and what a mismatch means
SOURCE = {"folder": "it was scored on another folder", "checkpoint": "it was scored with its other checkpoint",
          "stamp": "its checkpoint file changed since it was scored", "files": "the corruption files changed since "
          "it was scored", "overrides": "it was scored with other overrides", "split": "its clean error is of "
          "another split"}

log = logging.getLogger(__name__)


def corruption_sets(names: Sequence[str]) -> dict[str, list[str]]:
    """The corruptions of a folder that each set covers: `common`, those of Hendrycks & Dietterich's 15 (when it has
    any), `extra`, those of the official folders' 4 extra ones (when it has any), and `all`, every one."""
    sets = {"common": [n for n in names if n in COMMON], "extra": [n for n in names if n in EXTRA],
            "all": list(names)}
    return {name: members for name, members in sets.items() if members}


def default_set(sets: Mapping[str, Sequence[str]]) -> str:
    """The set the mean corruption error covers unless told: H&D's 15 when the folder has them, else every file (a
    folder of one's own corruptions)."""
    return "common" if "common" in sets else "all"


def chosen_set(folder: Path | str, names: Sequence[str], chosen: str | None) -> str:
    """`chosen` (by default `default_set`), checked: a UserError when the folder has none of its corruptions."""
    sets = corruption_sets(names)
    if chosen is not None and chosen not in sets:
        raise UserError(f"--corruptions-set {chosen}: {folder} holds none of those corruptions; it has "
                        f"{', '.join(names)} (choose among {', '.join(s for s in SETS if s in sets)})")
    return chosen or default_set(sets)


def _cell_metrics() -> list[str]:
    """The metrics each corruption x severity keeps: those of the corruption record that a scoring computes."""
    return [m for m in metrics.recorded("corruption") if metrics.METRICS[m].scored]


def score_corruptions(scored: Scorer, dataset: DictConfig, folder: Path) -> dict[str, Any]:
    """n (images per cell) and, per corruption, the accuracy, ECE and NLL at severities 1-5."""
    cells: dict[str, dict[str, list[float]]] = {}
    n = 0
    kept = _cell_metrics()
    for name, _, split in read_corruptions(folder, dataset.image_size, dataset.channels, dataset.num_classes):
        scores = scored(split)
        n = scores.n
        for metric in kept:
            cells.setdefault(name, {m: [] for m in kept})[metric].append(scores.figures[metric])
    return dict(n=n, corruptions=cells)


def errors_of(result: dict[str, Any]) -> dict[str, list[float]]:
    """corruption -> error at severities 1-5 of a `score_corruptions` result."""
    return {name: [1 - a for a in c["accuracy"]] for name, c in result["corruptions"].items()}


def summarize(result: dict[str, Any], chosen: str | None, baseline: dict[str, Any] | None = None,
              baseline_run: Path | None = None) -> dict[str, Any]:
    """`result` (scores, with `clean`: the error on the clean split) with its means over each set of its corruptions
    under `sets` and those of the `chosen` set (by default H&D's 15, or every file of a folder without them) beside
    `set`; against `baseline` (another result), `baseline` (the CE and relative CE per corruption) and each set's mCE
    and relative mCE."""
    errors = errors_of(result)
    chosen = chosen_set(result["folder"], list(errors), chosen)
    summary = dict(result)
    if baseline is not None:
        summary["baseline"] = dict(run=str(baseline_run), stamp=baseline["stamp"],
                                   clean_error=baseline["clean"]["error"],
                                   corruption_errors=corruption_errors(errors, errors_of(baseline)),
                                   relative_corruption_errors=relative_corruption_errors(
                                       errors, result["clean"]["error"], errors_of(baseline),
                                       baseline["clean"]["error"]))
    summary["sets"] = {name: _means(result, names, baseline) for name, names in corruption_sets(list(errors)).items()}
    return {**summary, "set": chosen, **summary["sets"][chosen]}


def _means(result: dict[str, Any], names: list[str], baseline: dict[str, Any] | None) -> dict[str, Any]:
    """The means over the corruptions `names` (and with a baseline, mCE and relative mCE)."""
    cells = [result["corruptions"][n] for n in names]
    every = errors_of(result)
    errors = {n: every[n] for n in names}
    means = dict(names=names, mean_corruption_error=mean_corruption_error(errors),
                 **{f"mean_corruption_{m}": float(np.mean([c[m] for c in cells])) for m in _cell_metrics()})
    if baseline is not None:
        means.update({m: metrics.METRICS[m].function(errors, result["clean"]["error"], errors_of(baseline),
                                                     baseline["clean"]["error"])
                      for m in metrics.recorded("baseline")})
    return means


def stored(run: Path, expected: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the run's corruptions.json, "") when it was scored as `expected` says (folder, checkpoint and its stamp, the
    corruption files' fingerprint, qualifying overrides, clean split), else (None, why not)."""
    result = read_json(run / CORRUPTIONS)
    if result is None:
        return None, f"it has no readable {CORRUPTIONS}"
    if not {"stamp", "files", "overrides", "clean"} <= set(result):
        return None, f"its {CORRUPTIONS} was written by an older regbench, which did not record its checkpoint and files"
    found = dict(folder=result.get("folder"), checkpoint=result.get("checkpoint"), stamp=result["stamp"],
                 files=result["files"], overrides=qualifying(result["overrides"]), split=result["clean"].get("split"))
    for key, why in SOURCE.items():
        if found[key] != expected[key]:
            return None, why
    return result, ""


def store(run: Path, result: dict[str, Any], heading: str) -> Path:
    """corruptions.json and the error heatmap (its path returned) into the run folder."""
    write_json(run / CORRUPTIONS, result, indent=1, newline=False)
    png = run / heatmap_png(result["checkpoint"])
    plot_heatmap(png, errors_of(result), f"{heading}\nmean corruption error {result['mean_corruption_error']:.4f} "
                                         f"over {result['set']} ({len(result['names'])} corruptions; "
                                         f"n={result['n']} per cell)")
    return png


def _scored(run: Path, cfg: DictConfig, checkpoint: str, scored: Scorer, folder: Path, overrides: list[str],
            clean: dict[str, Any]) -> dict[str, Any]:
    """The scores of every cell of `folder`, with what they were computed from."""
    return dict(folder=str(folder), checkpoint=checkpoint, stamp=checkpoint_stamp(run, checkpoint),
                files=fingerprint(folder), overrides=list(overrides), clean=clean,
                **score_corruptions(scored, cfg.dataset, folder))


def _baseline_scores(baseline: Path, folder: Path, checkpoint: str, overrides: list[str], split_name: str,
                     start: str) -> dict[str, Any]:
    """The baseline run's scores on `folder`: its corruptions.json when still current, else scored now (one line says
    why) and stored in its folder with its own figures, so that the runs compared with it score it once."""
    expected = dict(folder=str(folder), checkpoint=checkpoint, stamp=checkpoint_stamp(baseline, checkpoint),
                    files=fingerprint(folder), overrides=qualifying(overrides), split=split_name)
    found, why = stored(baseline, expected)
    if found is not None:
        return found
    log.warning("baseline %s: scoring its %s checkpoint on %s (%s)", baseline, checkpoint, folder, why)
    cfg = saved_config(baseline, overrides)
    scored = scorer(cfg, baseline, checkpoint)[0]
    clean = dict(split=split_name, error=1 - scored(split_of(cfg, split_name)[1]).accuracy)
    theirs = _scored(baseline, cfg, checkpoint, scored, folder, overrides, clean)
    own = summarize(theirs, None, theirs, baseline)
    store(baseline, own, f"{baseline.name} · {checkpoint} checkpoint")
    source = dict(checkpoint=checkpoint, stamp=theirs["stamp"], overrides=list(overrides), split=split_name)
    store_evaluation(baseline, {metrics.prefix(start, "corruption"): _family(own, source, baseline, start)})
    return theirs


def _family(result: dict[str, Any], source: dict[str, Any], baseline: Path | None, start: str) -> dict[str, Any]:
    """eval.json's corruption family: what it was computed from, and the figures of each set (the default set's under
    the plain names corruption_error, corruption_acc, ..., mce, relative_mce; the others' prefixed extra_, all_)."""
    sets = result["sets"]
    plain = default_set(sets)
    figures: dict[str, float] = {}
    for name, means in sets.items():
        if name != plain and means["names"] == sets[plain]["names"]:
            continue  # the same corruptions as the plain names'
        at = start if name == plain else metrics.prefix(start, name)
        figures.update(metrics.named(metrics.prefix(at, "corruption"), "corruption",
                                     {m: means[f"mean_corruption_{m}"] for m in metrics.recorded("corruption")}))
        figures.update({metrics.figure_name(at, m): means[m] for m in metrics.recorded("baseline")
                        if means.get(m) is not None})
    return dict(source, corruptions=result["folder"], files=result["files"],
                baseline=str(baseline.resolve()) if baseline else None,
                baseline_stamp=result["baseline"]["stamp"] if baseline else None, figures=figures)


def corruption_family(ctx: Context, scored: Scorer, start: str, clean_error: float) -> tuple[dict[str, Any], Families]:
    """The corruption figures of another scorer of the run (its MC passes, an ensemble): every cell of
    --corruptions scored by `scored`, summarized by set (no baseline, no corruptions.json: the run's own are its
    plain evaluation's), as the JSON line's part (the cells included) and eval.json's family <start>_corruption."""
    folder = ctx.request.corruptions.resolve()
    ours = dict(folder=str(folder), files=fingerprint(folder), clean=dict(split=ctx.split_name, error=clean_error),
                **score_corruptions(scored, ctx.cfg.dataset, folder))
    result = summarize(ours, ctx.request.corruptions_set)
    at = metrics.prefix(ctx.start, start)
    return result, {metrics.prefix(at, "corruption"): _family(result, ctx.source, None, at)}


def _check(request: EvalRequest) -> None:
    if request.baseline is not None and request.corruptions is None:
        raise UserError("--baseline compares errors under corruption: add --corruptions DIR")
    if request.corruptions_set is not None and request.corruptions is None:
        raise UserError("--corruptions-set chooses among the corruptions scored: add --corruptions DIR")
    if request.baseline is not None and checkpoint_stamp(request.baseline, request.checkpoint) is None:
        raise UserError(f"--baseline {request.baseline} has no {checkpoint_file(request.checkpoint)} to score: pass "
                        f"a run folder that has one (or another --checkpoint)")


def _arguments(run: Path, request: EvalRequest) -> dict[str, Any]:
    """The corruption folder and its files' fingerprint, the set, the baseline run and its checkpoint's stamp."""
    folder, baseline = request.corruptions, request.baseline
    return dict(corruptions=str(folder.resolve()) if folder else None,
                corruption_files=fingerprint(folder) if folder else None, corruptions_set=request.corruptions_set,
                baseline=str(baseline.resolve()) if baseline else None,
                baseline_stamp=checkpoint_stamp(baseline, request.checkpoint) if baseline else None)


def _prepare(ctx: Context) -> Step | None:
    request = ctx.request
    if request.corruptions is None:
        return None
    # a folder off the layout, or without the set chosen, stops here, before any scoring
    chosen_set(request.corruptions, corruption_names(request.corruptions), request.corruptions_set)

    def step(scores: Scores, scored: Scorer) -> tuple[dict[str, Any], Families]:
        """Score every cell of the folder, summarize it by set (against the baseline's scores: the same run's, its
        stored corruptions.json when it is of the same checkpoint file, corruption files and overrides, else scored
        now), write corruptions.json and the heatmap."""
        folder, baseline, checkpoint = request.corruptions.resolve(), request.baseline, request.checkpoint
        clean = dict(split=ctx.split_name, error=1 - scores.accuracy)
        ours = _scored(ctx.run, ctx.cfg, checkpoint, scored, folder, request.overrides, clean)
        theirs = None
        if baseline is not None:
            theirs = ours if baseline.resolve() == ctx.run.resolve() else _baseline_scores(
                baseline, folder, checkpoint, list(request.overrides), ctx.split_name, ctx.start)
        result = summarize(ours, request.corruptions_set, theirs, baseline)
        png = store(ctx.run, result, f"{ctx.run.name} · {checkpoint} checkpoint")
        result = {**result, "json": str(ctx.run / CORRUPTIONS), "heatmap_png": str(png)}
        part = {k: v for k, v in result.items() if k != "corruptions"}
        return part, {metrics.prefix(ctx.start, "corruption"): _family(result, ctx.source, baseline, ctx.start)}

    return step


CORRUPTION = Analysis("corruptions", _arguments, _prepare, _check)
