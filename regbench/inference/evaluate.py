"""`regbench eval`: a run's checkpoint scored on a split — accuracy, loss, calibration (ECE, NLL, Brier, reliability
diagram, temperature scaling), per-class accuracy, speed, confusions — and on request under corruption and against
an OOD dataset; for one run or every completed run of a sweep, the figures kept in each run's eval.json."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
from omegaconf import DictConfig

from regbench.data.corruptions import corruption_names, fingerprint
from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.files import atomic_write
from regbench.inference import robustness
from regbench.inference.corruptions import chosen_set, default_set
from regbench.inference.ood import detection, ood_split
from regbench.inference.run_folder import load_model, saved_config
from regbench.run_dir.evaluated import checkpoint_stamp, qualifying, scored_before, store_evaluation

if TYPE_CHECKING:
    from regbench.evaluation import Scores

log = logging.getLogger(__name__)


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


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """counts[true class, predicted class]."""
    return np.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)


def plot_confusion(path: Path, counts: np.ndarray, classes: tuple[str, ...], title: str) -> None:
    """The confusion matrix as a PNG, rows normalized (each true class sums to 1), counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def _scorer(cfg: DictConfig, run: Path, checkpoint: str) -> tuple[Callable[[Split], Scores], str]:
    """(a function scoring the run's checkpoint on a split as its trainer scored it, the device it computes on)."""
    from regbench.evaluation import eval_loader, score
    from regbench.train.compute import set_up

    tr = cfg.trainer
    compute = set_up(tr)
    model = load_model(cfg, run, checkpoint)
    compute.adapt(model)

    def scored(split: Split) -> Scores:
        return score(model, eval_loader(cfg.dataset, tr, split), tr.label_smoothing, compute.amp, per_sample=True)

    return scored, compute.device


def evaluate_run(run: Path, checkpoint: str, split_name: str | None, output: Path | None, overrides: list[str],
                 save_probs: Path | None = None, temperature_scale: bool = False, corruptions: Path | None = None,
                 baseline: Path | None = None, ood: str | None = None,
                 corruptions_set: str | None = None) -> dict[str, Any]:
    """Score checkpoints/<checkpoint>.npz of `run` on a split as its trainer scored it (its device, AMP mode, batches
    and loss); write the confusion-matrix and reliability-diagram PNGs (and with `save_probs`, the probabilities);
    with `temperature_scale`, also the figures after a temperature fitted on val; with `corruptions`, score every
    corruption x severity of that folder (against `baseline`'s too), its means headed by `corruptions_set`'s; with
    `ood`, detect that dataset's images as out-of-distribution; merge the figures into the run's eval.json, each
    family with what it was computed from, and return them all."""
    from regbench import metrics
    from regbench.inference.calibration import fit_temperature, plot_reliability, scaled_probs

    if save_probs is not None and save_probs.is_dir():
        raise UserError(f"--save-probs {save_probs} is a folder: give a file, e.g. {save_probs / 'probs.npz'}")
    if baseline is not None and corruptions is None:
        raise UserError("--baseline compares errors under corruption: add --corruptions DIR")
    if corruptions_set is not None and corruptions is None:
        raise UserError("--corruptions-set chooses among the corruptions scored: add --corruptions DIR")
    if baseline is not None and checkpoint_stamp(baseline, checkpoint) is None:
        raise UserError(f"--baseline {baseline} has no checkpoints/{checkpoint}.npz to score: pass a run folder that "
                        f"has one (or another --checkpoint)")
    cfg = saved_config(run, overrides)
    name, split, classes = split_of(cfg, split_name)
    if temperature_scale and name == "val":
        raise UserError("--temperature-scale fits the temperature on the val split, so it cannot score val too: "
                        "score --split test (a run whose val is its test set, dataset.val_size=0, has no split to "
                        "fit on that is not scored)")
    if corruptions is not None:  # a folder off the layout, or without the set chosen, stops here, before any scoring
        chosen_set(corruptions, corruption_names(corruptions), corruptions_set)
    ood_name, ood_images = ood_split(cfg.dataset, ood) if ood is not None else (None, None)
    scored, device = _scorer(cfg, run, checkpoint)
    scores = scored(split)
    counts = confusion_matrix(scores.labels, scores.probs.argmax(axis=1), len(classes))
    per_class = counts.diagonal() / np.maximum(counts.sum(axis=1), 1)
    path = output or run / f"confusion_{name}_{checkpoint}.png"
    heading = f"{run.name} · {checkpoint} checkpoint · {name}"
    prefix = _prefix(checkpoint)

    def calibration(ece: float, accuracy: float) -> str:
        return f"ECE {ece:.4f} ({metrics.ECE_BINS} bins), accuracy {accuracy:.4f} (n={scores.n})"

    plot_confusion(path, counts, classes, f"{heading}: accuracy {scores.accuracy:.4f} (n={scores.n})")
    reliability = path.parent / f"reliability_{name}_{checkpoint}.png"
    plot_reliability(reliability, scores.bins, f"{heading}\n{calibration(scores.ece, scores.accuracy)}")
    result = dict(run=str(run), checkpoint=checkpoint, split=name, n=scores.n, skipped=len(split) - scores.n,
                  accuracy=scores.accuracy, loss=scores.loss, ece=scores.ece, nll=scores.nll, brier=scores.brier,
                  per_class_accuracy={c: (float(a) if counts[i].sum() else None)
                                      for i, (c, a) in enumerate(zip(classes, per_class))},
                  device=device, eval_img_per_s=round(scores.n / max(scores.seconds, 1e-9), 1),
                  confusion_png=str(path), reliability_png=str(reliability))
    source = dict(checkpoint=checkpoint, stamp=checkpoint_stamp(run, checkpoint), overrides=list(overrides), split=name)
    families = {f"{prefix}{name}": dict(source, figures={
        f"{prefix}{name}_{short}": result[key] for short, key in
        (("acc", "accuracy"), ("loss", "loss"), ("ece", "ece"), ("nll", "nll"), ("brier", "brier"))})}
    if save_probs is not None:
        with atomic_write(save_probs, "wb") as f:
            np.savez(f, probs=scores.probs, labels=scores.labels.astype(np.int64))
        result["probs_file"] = str(save_probs)
    if temperature_scale:
        val_split = split_of(cfg, "val")[1]
        val = scored(val_split)
        temperature = fit_temperature(val.logits, val.labels)
        probs = scaled_probs(scores.logits, temperature)
        bins = metrics.calibration_bins(probs, scores.labels)
        logits = scores.logits.astype(np.float64) / temperature
        scaled = metrics.from_tally(metrics.tally(probs, scores.labels, logits=logits))
        scaled_png = path.parent / f"reliability_{name}_{checkpoint}_temperature.png"
        plot_reliability(scaled_png, bins, f"{heading}, temperature {temperature:.3f} fitted on val\n"
                                           f"{calibration(scaled['ece'], scaled['accuracy'])}")
        result["temperature_scaled"] = dict(temperature=temperature, fitted_on="val", val_n=val.n,
                                            val_skipped=len(val_split) - val.n, **scaled,
                                            reliability_png=str(scaled_png))
        families[f"{prefix}ts_{name}"] = dict(source, fitted_on="val", figures={
            f"{prefix}ts_{name}_{k}": scaled[k] for k in ("ece", "nll", "brier")})
    if corruptions is not None:
        clean = dict(split=name, error=1 - scores.accuracy)
        summary = _corruptions(run, cfg, checkpoint, scored, corruptions.resolve(), corruptions_set, baseline,
                               overrides, clean)
        result["corruptions"] = {k: v for k, v in summary.items() if k != "corruptions"}
        families[f"{prefix}corruption"] = _corruption_family(summary, source, baseline, prefix)
    if ood is not None:
        out = scored(ood_images)
        detected = detection(scores.logits, out.logits)
        result["ood"] = dict(dataset=ood_name, overrides=ood, n_in=scores.n, n_out=out.n,
                             in_distribution=name, positive="in-distribution (aupr_out: OOD)", **detected)
        families[f"{prefix}ood"] = dict(source, ood=ood, figures={f"{prefix}ood_{k}": v for k, v in detected.items()})
    store_evaluation(run, families, arguments_of(run, checkpoint, split_name, overrides, temperature_scale,
                                                 corruptions, baseline, ood, corruptions_set))
    return result


def _prefix(checkpoint: str) -> str:
    """What eval.json's names start with: nothing for the best checkpoint, final_ for the last (as summary.json)."""
    return "" if checkpoint == "best" else "final_"


def arguments_of(run: Path, checkpoint: str, split_name: str | None, overrides: list[str], temperature_scale: bool,
                 corruptions: Path | None, baseline: Path | None, ood: str | None,
                 corruptions_set: str | None) -> dict[str, Any]:
    """What an evaluation of `run` computes from: its arguments, the checkpoint file's stamp, the corruption files'
    fingerprint and the baseline's checkpoint stamp."""
    return dict(checkpoint=checkpoint, stamp=checkpoint_stamp(run, checkpoint), split=split_name,
                overrides=list(overrides), temperature_scale=temperature_scale,
                corruptions=str(corruptions.resolve()) if corruptions else None,
                corruption_files=fingerprint(corruptions) if corruptions else None, corruptions_set=corruptions_set,
                baseline=str(baseline.resolve()) if baseline else None,
                baseline_stamp=checkpoint_stamp(baseline, checkpoint) if baseline else None, ood=ood)


def _corruptions(run: Path, cfg: DictConfig, checkpoint: str, scored: Callable[[Split], Scores], folder: Path,
                 chosen: str | None, baseline: Path | None, overrides: list[str],
                 clean: dict[str, Any]) -> dict[str, Any]:
    """Score every corruption x severity of `folder`, summarize it by set (against `baseline`'s scores: the same run's,
    its stored corruptions.json when it is of the same checkpoint file, corruption files and overrides, else scored
    now), write corruptions.json and the heatmap; return the result with the JSON's and the heatmap's paths."""
    ours = _scored_corruptions(run, cfg, checkpoint, scored, folder, overrides, clean)
    theirs = None
    if baseline is not None:
        theirs = ours if baseline.resolve() == run.resolve() else _baseline_corruptions(
            baseline, folder, checkpoint, overrides, clean["split"])
    result = robustness.summarize(ours, chosen, theirs, baseline)
    png = robustness.store(run, result, f"{run.name} · {checkpoint} checkpoint")
    return {**result, "json": str(run / robustness.RESULT), "heatmap_png": str(png)}


def _scored_corruptions(run: Path, cfg: DictConfig, checkpoint: str, scored: Callable[[Split], Scores],
                        folder: Path, overrides: list[str], clean: dict[str, Any]) -> dict[str, Any]:
    """The scores of every cell of `folder`, with what they were computed from."""
    return dict(folder=str(folder), checkpoint=checkpoint, stamp=checkpoint_stamp(run, checkpoint),
                files=fingerprint(folder), overrides=list(overrides), clean=clean,
                **robustness.score_corruptions(scored, cfg.dataset, folder))


def _baseline_corruptions(baseline: Path, folder: Path, checkpoint: str, overrides: list[str],
                          split_name: str) -> dict[str, Any]:
    """The baseline run's scores on `folder`: its corruptions.json when still current, else scored now (one line says
    why) and stored in its folder with its own figures, so that the runs compared with it score it once."""
    expected = dict(folder=str(folder), checkpoint=checkpoint, stamp=checkpoint_stamp(baseline, checkpoint),
                    files=fingerprint(folder), overrides=qualifying(overrides), split=split_name)
    found, why = robustness.stored(baseline, expected)
    if found is not None:
        return found
    log.warning("baseline %s: scoring its %s checkpoint on %s (%s)", baseline, checkpoint, folder, why)
    cfg = saved_config(baseline, overrides)
    scored = _scorer(cfg, baseline, checkpoint)[0]
    clean = dict(split=split_name, error=1 - scored(split_of(cfg, split_name)[1]).accuracy)
    theirs = _scored_corruptions(baseline, cfg, checkpoint, scored, folder, overrides, clean)
    own = robustness.summarize(theirs, None, theirs, baseline)
    robustness.store(baseline, own, f"{baseline.name} · {checkpoint} checkpoint")
    source = dict(checkpoint=checkpoint, stamp=theirs["stamp"], overrides=list(overrides), split=split_name)
    store_evaluation(baseline, {f"{_prefix(checkpoint)}corruption": _corruption_family(own, source, baseline,
                                                                                      _prefix(checkpoint))})
    return theirs


def _corruption_family(result: dict[str, Any], source: dict[str, Any], baseline: Path | None,
                       prefix: str) -> dict[str, Any]:
    """eval.json's corruption family: what it was computed from, and the figures of each set (the default set's under
    the plain names corruption_error, corruption_acc, ..., mce, relative_mce; the others' prefixed extra_, all_)."""
    sets = result["sets"]
    plain = default_set(sets)
    figures: dict[str, float] = {}
    for name, means in sets.items():
        if name != plain and means["names"] == sets[plain]["names"]:
            continue  # the same corruptions as the plain names'
        start = prefix if name == plain else f"{prefix}{name}_"
        figures.update({f"{start}corruption_{short}": means[f"mean_corruption_{key}"] for short, key in
                        (("error", "error"), ("acc", "accuracy"), ("ece", "ece"), ("nll", "nll"))})
        figures.update({f"{start}{key}": means[key] for key in ("mce", "relative_mce") if means.get(key) is not None})
    return dict(source, corruptions=result["folder"], files=result["files"],
                baseline=str(baseline.resolve()) if baseline else None,
                baseline_stamp=result["baseline"]["stamp"] if baseline else None, figures=figures)


def sweep_runs(folder: Path) -> list[Path] | None:
    """The run folders of a sweep folder (its numbered subfolders with .hydra/, in number order), or None when
    `folder` is one run."""
    if (folder / ".hydra").is_dir() or not folder.is_dir():
        return None
    runs = sorted((p for p in folder.iterdir() if p.name.isdigit() and (p / ".hydra").is_dir()),
                  key=lambda p: int(p.name))
    if not runs:
        raise UserError(f"{folder} is neither a run folder (with .hydra/) nor a sweep folder (numbered run "
                        f"subfolders with .hydra/): pass one of them")
    return runs


def evaluate_sweep(runs: list[Path], checkpoint: str, split_name: str | None, overrides: list[str],
                   note: Callable[[str], None], temperature_scale: bool = False, corruptions: Path | None = None,
                   baseline: Path | None = None, ood: str | None = None,
                   corruptions_set: str | None = None) -> Iterator[dict[str, Any]]:
    """`evaluate_run` on each completed run of a sweep, except those already evaluated with the same arguments;
    one `note` per run left out."""
    options = (temperature_scale, corruptions, baseline, ood, corruptions_set)
    for run in runs:
        status = _status(run)
        if status != "completed":
            note(f"{run}: skipped, not completed ({status})")
        elif scored_before(run, arguments_of(run, checkpoint, split_name, overrides, *options)):
            note(f"{run}: skipped, already evaluated with these arguments (its eval.json has the figures)")
        else:
            yield evaluate_run(run, checkpoint, split_name, None, overrides, None, *options)


def _status(run: Path) -> str:
    """summary.json's status, or "missing"."""
    from regbench import run_dir

    return str((run_dir.read_json(run / run_dir.SUMMARY) or {}).get("status", "missing"))
