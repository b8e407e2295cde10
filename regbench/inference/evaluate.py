"""`regbench eval`: a run's checkpoint scored on a split — accuracy, loss, calibration (ECE, NLL, Brier, reliability
diagram, temperature scaling), per-class accuracy, speed, confusions."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig

from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.files import atomic_write
from regbench.inference.run_folder import load_model, saved_config

if TYPE_CHECKING:
    from regbench.evaluation import Scores


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


def evaluate_run(run: Path, checkpoint: str, split_name: str | None, output: Path | None, overrides: list[str],
                 save_probs: Path | None = None, temperature_scale: bool = False) -> dict[str, Any]:
    """Score checkpoints/<checkpoint>.npz of `run` on a split as its trainer scored it (its device, AMP mode, batches
    and loss); write the confusion-matrix and reliability-diagram PNGs (and with `save_probs`, the probabilities);
    with `temperature_scale`, also the figures after a temperature fitted on val; return the figures."""
    from regbench import metrics
    from regbench.device import amp_mode, select_device
    from regbench.evaluation import eval_loader, score
    from regbench.inference.calibration import fit_temperature, plot_reliability, scaled_probs
    from regbench.train import speed, threads

    if save_probs is not None and save_probs.is_dir():
        raise UserError(f"--save-probs {save_probs} is a folder: give a file, e.g. {save_probs / 'probs.npz'}")
    cfg = saved_config(run, overrides)
    name, split, classes = split_of(cfg, split_name)
    if temperature_scale and name == "val":
        raise UserError("--temperature-scale fits the temperature on the val split, so it cannot score val too: "
                        "score --split test (a run whose val is its test set, dataset.val_size=0, has no split to "
                        "fit on that is not scored)")
    tr = cfg.trainer
    device = select_device(tr.device)
    amp = amp_mode(tr.amp, device)
    speed.configure(device, threads=threads.resolve(tr), trainer=tr, amp=amp)
    model = load_model(cfg, run, checkpoint)
    if tr.fast_conv_bias and device == "cpu":
        speed.fast_conv_bias(model)

    def scored(split: Split) -> Scores:
        return score(model, eval_loader(cfg.dataset, tr, split), tr.label_smoothing, amp, per_sample=True)

    scores = scored(split)
    counts = confusion_matrix(split.labels, scores.probs.argmax(axis=1), len(classes))
    per_class = counts.diagonal() / np.maximum(counts.sum(axis=1), 1)
    path = output or run / f"confusion_{name}_{checkpoint}.png"
    heading = f"{run.name} · {checkpoint} checkpoint · {name}"

    def calibration(ece: float, accuracy: float) -> str:
        return f"ECE {ece:.4f} ({metrics.ECE_BINS} bins), accuracy {accuracy:.4f} (n={scores.n})"

    plot_confusion(path, counts, classes, f"{heading}: accuracy {scores.accuracy:.4f} (n={scores.n})")
    reliability = path.parent / f"reliability_{name}_{checkpoint}.png"
    plot_reliability(reliability, scores.bins, f"{heading}\n{calibration(scores.ece, scores.accuracy)}")
    result = dict(run=str(run), checkpoint=checkpoint, split=name, n=scores.n, accuracy=scores.accuracy,
                  loss=scores.loss, ece=scores.ece, nll=scores.nll, brier=scores.brier,
                  per_class_accuracy={c: (float(a) if counts[i].sum() else None)
                                      for i, (c, a) in enumerate(zip(classes, per_class))},
                  device=device, eval_img_per_s=round(scores.n / max(scores.seconds, 1e-9), 1),
                  confusion_png=str(path), reliability_png=str(reliability))
    if save_probs is not None:
        with atomic_write(save_probs, "wb") as f:
            np.savez(f, probs=scores.probs, labels=split.labels.astype(np.int64))
        result["probs_file"] = str(save_probs)
    if temperature_scale:
        val = split_of(cfg, "val")[1]
        temperature = fit_temperature(scored(val).logits, val.labels)
        probs = scaled_probs(scores.logits, temperature)
        bins = metrics.calibration_bins(probs, split.labels)
        figures = metrics.from_tally(metrics.tally(probs, split.labels))
        scaled_png = path.parent / f"reliability_{name}_{checkpoint}_temperature.png"
        plot_reliability(scaled_png, bins, f"{heading}, temperature {temperature:.3f} fitted on val\n"
                                           f"{calibration(figures['ece'], figures['accuracy'])}")
        result["temperature_scaled"] = dict(temperature=temperature, fitted_on="val", **figures,
                                            reliability_png=str(scaled_png))
    return result
