"""`regbench eval`: a run's checkpoint scored on a split — accuracy, loss, per-class accuracy, speed, confusions."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from omegaconf import DictConfig

from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.inference.run_folder import load_model, saved_config


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


def score(model: paddle.nn.Layer, cfg: DictConfig, split: Split) -> tuple[np.ndarray, float, float]:
    """(predictions, mean loss, seconds in the forward passes) over a split, batched as the trainer evaluates."""
    from regbench.data.batches import BatchLoader
    from regbench.train.loop import loss_fn

    ds = cfg.dataset
    loader = BatchLoader(split, batch_size=cfg.trainer.eval_batch_size, mean=list(ds.mean), std=list(ds.std),
                         crop_padding=ds.crop_padding, resized_crop_scale=tuple(ds.resized_crop_scale),
                         even_shards=False)
    predictions, loss_sum, seconds = [], paddle.zeros([]), 0.0
    with paddle.no_grad():
        for images, labels in loader.epoch(seed=None):
            tick = time.perf_counter()
            logits = model(images)
            loss_sum += loss_fn(logits, labels, cfg.trainer.label_smoothing, reduction="sum")
            predictions.append(logits.argmax(axis=1).numpy())
            seconds += time.perf_counter() - tick
    return np.concatenate(predictions), loss_sum.item() / len(split), seconds


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """counts[true class, predicted class]."""
    return np.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)


def plot_confusion(path: Path, counts: np.ndarray, classes: tuple[str, ...], title: str) -> None:
    """The confusion matrix as a PNG, rows normalized (each true class sums to 1), counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regbench.files import atomic_write

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


def evaluate_run(run: Path, checkpoint: str, split_name: str | None, output: Path | None,
                 overrides: list[str]) -> dict[str, Any]:
    """Score checkpoints/<checkpoint>.npz of `run` on a split; write the confusion-matrix PNG; return the figures."""
    from regbench.train import speed

    cfg = saved_config(run, overrides)
    model = load_model(cfg, run, checkpoint)
    if cfg.trainer.get("fast_conv_bias") and paddle.device.get_device() == "cpu":
        speed.fast_conv_bias(model)  # as the trainer scored it on the CPU
    name, split, classes = split_of(cfg, split_name)
    predictions, loss, seconds = score(model, cfg, split)
    counts = confusion_matrix(split.labels, predictions, len(classes))
    per_class = counts.diagonal() / np.maximum(counts.sum(axis=1), 1)
    right = int(counts.diagonal().sum())
    path = output or run / f"confusion_{name}_{checkpoint}.png"
    plot_confusion(path, counts, classes, f"{run.name} · {checkpoint} checkpoint · {name}: "
                                          f"accuracy {right / len(split):.4f} (n={len(split)})")
    return dict(run=str(run), checkpoint=checkpoint, split=name, n=len(split), accuracy=right / len(split), loss=loss,
                per_class_accuracy={c: (float(a) if counts[i].sum() else None)
                                    for i, (c, a) in enumerate(zip(classes, per_class))},
                eval_img_per_s=round(len(split) / max(seconds, 1e-9), 1), confusion_png=str(path))
