"""The measured statistics of the batch and residual regularizers against their papers' definitions: DropPath's drop
rate per block of the CIFAR ResNet18 (the linear rule), Cutout's erased area (the clipped square), Mixup's λ and
CutMix's λ after clipping and the fraction of batches it mixes.

    python scripts/reg_statistics.py [--batches 4000] [--samples 20000] [--draws 4000000]

Real layers and transforms, built from the league's config (conf/experiment/league_resnet18.yaml) as a run builds
them, on real tensors, with the trainer's random streams (seed 0); each expectation is computed from the paper's
definition, not from the implementation: exactly (DropPath, Mixup, Cutout by enumerating every centre) or, for
CutMix's λ, by a Monte Carlo of its own. Prints one Markdown table.
"""
from __future__ import annotations

import argparse

import numpy as np
import regbench  # noqa: F401  (before paddle: regbench/__init__.py says why)
import paddle

from regbench.reg.batch import build_batch_regs
from regbench.config import compose
from regbench.reg.droppath import DropPath
from regbench.models import build_model
from regbench.reg.mixed_targets import Mixed

SEED = 0
IMAGE = 32   # CIFAR


def paper_span(centre: np.ndarray, length: np.ndarray | int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of the span both papers' code (and timm's rand_bbox) take around a centre pixel:
    [c − length//2, c + length//2) clipped to [0, n), so an odd length covers length − 1 pixels."""
    return np.clip(centre - length // 2, 0, n), np.clip(centre + length // 2, 0, n)


def cutout_area(size: int, n: int = IMAGE) -> float:
    """Expected erased fraction of an n×n image: the papers' size×size square around each of the n² centres."""
    ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    (top, bottom), (left, right) = paper_span(ys, size, n), paper_span(xs, size, n)
    return float(((bottom - top) * (right - left)).mean() / n**2)


def cutmix_lambda(alpha: float, draws: int, n: int = IMAGE) -> tuple[float, float]:
    """Expected λ of a mixed batch, before and after clipping, by Monte Carlo from the paper's formula:
    λ ~ Beta(α, α), box side k = ⌊n·√(1 − λ)⌋, a uniform centre per axis, the papers' clipped span."""
    rng = np.random.default_rng([SEED, 3])  # not a trainer stream
    side = (n * np.sqrt(1.0 - rng.beta(alpha, alpha, draws))).astype(int)
    (top, bottom), (left, right) = (paper_span(rng.integers(0, n, draws), side, n) for _ in range(2))
    return float(1 - (side**2).mean() / n**2), float(1 - ((bottom - top) * (right - left)).mean() / n**2)


def reg_config(reg: str, *overrides: str):
    return compose(["experiment=league_resnet18", f"reg={reg}", *overrides])


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error."""
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))


def droppath_rows(samples: int) -> list[tuple[str, float, float, float]]:
    cfg = reg_config("droppath")
    paddle.seed(SEED)
    model = build_model(cfg.model, cfg.act, cfg.reg)
    model.train()
    layers = [m for m in model.sublayers() if isinstance(m, DropPath)]
    rows = []
    for depth, layer in enumerate(layers, start=1):
        kept = layer(paddle.ones([samples, 1, 1, 1])).numpy().ravel()
        expected = cfg.reg.droppath.rate * depth / len(layers)
        rows.append((f"droppath: drop rate of block {depth}/{len(layers)}", *mean_se(list(kept == 0)), expected))
    return rows


def batch_stats(reg: str, batches: int, *overrides: str) -> tuple[list[float], list[float | None]]:
    """Per batch of 128 CIFAR-sized images of ones: the erased (zeroed) fraction and λ (None: the batch is unmixed)."""
    transform = build_batch_regs(reg_config(reg, *overrides).reg)
    images = paddle.ones([128, 3, IMAGE, IMAGE])
    labels = paddle.arange(128, dtype="int64")
    erased, lams = [], []
    for step in range(batches):
        out, targets = transform(images, labels, np.random.default_rng([SEED, 2, step]))  # the trainer's stream
        erased.append(float((out == 0).astype("float32").mean()))
        lams.append(float(targets.lam[0]) if isinstance(targets, Mixed) else None)
    return erased, lams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4000, help="batches of 128 images per batch regularizer")
    parser.add_argument("--samples", type=int, default=20000, help="samples per DropPath layer")
    parser.add_argument("--draws", type=int, default=4_000_000, help="Monte Carlo draws for CutMix's expected λ")
    args = parser.parse_args()
    rows = droppath_rows(args.samples)
    for size in (16, 8, 7):
        erased, _ = batch_stats("cutout", args.batches // 4, f"reg.cutout.size={size}")
        rows.append((f"cutout: erased area fraction, size {size} on {IMAGE}×{IMAGE}", *mean_se(erased),
                     cutout_area(size)))
    _, lams = batch_stats("mixup", args.batches)
    rows.append(("mixup: mean λ, Beta(1, 1)", *mean_se(lams), 0.5))
    _, lams = batch_stats("cutmix", args.batches)
    mixed = [lam for lam in lams if lam is not None]
    cutmix = reg_config("cutmix").reg.cutmix
    unclipped, clipped = cutmix_lambda(cutmix.alpha, args.draws)
    rows += [(f"cutmix: fraction of batches mixed (prob {cutmix.prob})", *mean_se([lam is not None for lam in lams]),
              cutmix.prob),
             (f"cutmix: mean λ of a mixed batch, after clipping (α {cutmix.alpha})", *mean_se(mixed), clipped),
             (f"cutmix: (the same before clipping: ⌊{IMAGE}·√(1 − λ)⌋ sides)", *[float("nan")] * 2, unclipped)]
    print(f"seed {SEED}; DropPath: {args.samples} samples per block; batch regularizers: batches of 128, "
          f"{args.batches} (cutout: {args.batches // 4} per size); CutMix's expectations: {args.draws} draws\n")
    print("| statistic | measured | ± std. error | expected |\n|---|---|---|---|")
    for name, measured, se, expected in rows:
        shown = ("—", "") if np.isnan(measured) else (f"{measured:.4f}", f"{se:.2g}")
        print(f"| {name} | {shown[0]} | {shown[1]} | {expected:.4f} |")


if __name__ == "__main__":
    main()
