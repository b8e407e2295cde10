"""Corrupted copies of a split in the CIFAR-10-C layout (cifar_c.py), made by imagecorruptions (the ImageNet-C
corruptions of Hendrycks & Dietterich at severities 1-5), seeded so that the same seed writes the same files."""
from __future__ import annotations

import inspect
import json
import sys
import time
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np
from omegaconf import DictConfig

from regbench.data import in_memory, load_splits
from regbench.data.cifar_c import LABELS, SEVERITIES
from regbench.data.splits import Split
from regbench.errors import UserError
from regbench.atomic_files import atomic_write, write_text

MIN_SIZE = 32  # imagecorruptions refuses smaller images
SOURCE = "source.json"  # what the files were made from, beside them


def library() -> ModuleType:
    """The imagecorruptions module, or a one-line UserError saying how to install it."""
    try:
        import imagecorruptions
    except ImportError:
        raise UserError("regbench corrupt needs imagecorruptions: pip install 'regbench[corrupt]'") from None
    return imagecorruptions


def choose(names: str | None) -> list[str]:
    """The corruptions named in a comma-separated list (any of the library's), or its 15 common ones when None."""
    lib = library()
    if names is None:
        return lib.get_corruption_names("common")
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    known = lib.get_corruption_names("all")
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise UserError(f"--corruptions {names}: unknown {', '.join(unknown) or 'empty list'}; choose among "
                        f"{', '.join(known)}")
    return list(dict.fromkeys(chosen))


def write_corrupted(split: Split, out: Path, names: Sequence[str], seed: int, source: dict,
                    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> list[str]:
    """<name>.npy for each corruption and labels.npy in `out`, each written atomically, one progress line per
    corruption; returns the corruptions the library could not apply (their errors were reported, the rest written)."""
    lib = library()
    n, channels, height, width = split.images.shape
    if min(height, width) < MIN_SIZE:
        raise UserError(f"the images are {height}x{width} but imagecorruptions needs at least {MIN_SIZE}x{MIN_SIZE}: "
                        f"add dataset.image_size={MIN_SIZE} (the images are resized)")
    if n == 0:
        raise UserError("the split has no images: raise dataset.limit.test")
    labels = np.tile(split.labels, SEVERITIES)
    _check_out(Path(out), labels)
    with atomic_write(Path(out) / LABELS, "wb") as f:
        np.save(f, labels)
    images = split.images.transpose(0, 2, 3, 1)  # [N, H, W, C], as the library and the layout take them
    failed = []
    for i, name in enumerate(names, 1):
        start = time.perf_counter()
        try:
            corrupted = np.concatenate([_corrupt(lib, images, name, s, seed) for s in range(1, SEVERITIES + 1)])
        except Exception as e:  # a library bug on one corruption must not lose the others
            progress(f"[{i}/{len(names)}] {name}: skipped, imagecorruptions failed ({type(e).__name__}: {e})")
            failed.append(name)
            continue
        with atomic_write(Path(out) / f"{name}.npy", "wb") as f:
            np.save(f, corrupted)
        progress(f"[{i}/{len(names)}] {name}: {SEVERITIES} x {n} images in {time.perf_counter() - start:.1f} s")
    write_text(Path(out) / SOURCE, json.dumps({**source, "seed": seed, "corruptions": [x for x in names
                                                                                     if x not in failed]}, indent=1))
    return failed


def corrupt_test_split(cfg: DictConfig, out: Path, names: Sequence[str], overrides: list[str]
                       ) -> tuple[dict[str, Any], list[str]]:
    """The test split of cfg.dataset (val when it has none) written corrupted into `out` (write_corrupted), seeded
    by cfg.seed; returns what was written from what (dataset, split, n, overrides, seed, written) and the corruptions
    the library could not apply."""
    splits = load_splits(cfg.dataset)
    split_name, split = ("val", splits.val) if splits.test is None else ("test", splits.test)
    split = in_memory(split)
    source = dict(dataset=cfg.hydra.runtime.choices.dataset, split=split_name, n=len(split), overrides=overrides)
    failed = write_corrupted(split, out, names, cfg.seed, source)
    return dict(**source, seed=cfg.seed, written=[n for n in names if n not in failed]), failed


def _check_out(out: Path, labels: np.ndarray) -> None:
    """Refuse a folder whose labels.npy belongs to other images: its corruption files would no longer match."""
    old = out / LABELS
    if not old.is_file():
        return
    try:
        same = np.array_equal(np.load(old, allow_pickle=False), labels)
    except (ValueError, OSError, EOFError):
        same = False
    if not same:
        raise UserError(f"{out} already holds corrupted files of other images ({LABELS} differs): "
                        f"give an empty folder as --out")


def _corrupt(lib: ModuleType, images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """`images` [N, H, W, C] corrupted at `severity`; the library's random draws seeded by (seed, name, severity)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), severity])
    np.random.seed(rng.integers(2**32))  # most corruptions draw from numpy's global generator
    takes_seed = "seed" in inspect.signature(lib.corruption_dict[name]).parameters  # the rest take a seed per call
    image_seeds = rng.integers(2**31, size=len(images))
    out = np.empty_like(images)
    for k, image in enumerate(images):
        kwargs = {"seed": int(image_seeds[k])} if takes_seed else {}
        corrupted = lib.corrupt(image[..., 0] if images.shape[3] == 1 else image, severity=severity,
                                corruption_name=name, **kwargs)
        # the library returns 3 channels for a grey image: back to grey as their mean
        out[k] = corrupted.mean(axis=2, keepdims=True).round() if images.shape[3] == 1 else corrupted
    return out
