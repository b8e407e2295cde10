"""Image folders: root/{train,[val],test}/<class>/*.jpg|png, or a .tar.gz of that tree; decoded once, then cached."""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from regbench.data.splits import Split, Splits
from regbench.errors import UserError
from regbench.files import WriteFailed, atomic_write

EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val", "test")  # val/ is optional
ORDER_SEED = 1234  # fixed: a mixed sample order, so that dataset.limit keeps every class
CACHE_VERSION = 2  # bump when the decoding changes


def load_imagefolder(root: str, image_size: int, channels: int) -> Splits:
    """train/, val/ and test/ as the splits; without val/, test/ serves as val (no separate test split).

    Class names are sorted; images are resized to image_size."""
    if channels not in (1, 3):
        raise UserError(f"dataset.channels must be 1 (grayscale) or 3 (RGB) for image folders, got {channels}")
    root = _existing(root)
    cache = _cache_path(root, image_size, channels)
    cached = _read_cache(cache)
    if cached is not None:
        return cached
    splits = _decode(root, image_size, channels)
    _write_cache(cache, splits)
    return splits


def has_val(root: str, **load: object) -> bool:
    """Whether the tree has images under val/<class>/, a val split of its own (read from file names, none decoded)."""
    return any(split == "val" for split, _, _, _ in _files(_existing(root)))


def _existing(root: str) -> str:
    """root as an absolute path, or a UserError when it does not exist."""
    root = os.path.abspath(root)
    if not os.path.exists(root):
        raise UserError(
            f"dataset.root={root} does not exist: point it at a folder with train/ and test/, or a .tar.gz of one"
        )
    return root


def _decode(root: str, image_size: int, channels: int) -> Splits:
    found: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = {s: {} for s in SPLITS}
    for split, cls, where, read in _files(root):
        found[split].setdefault(cls, []).append((where, _image(read(), where, image_size, channels)))
    for split in ("train", "test"):
        if not found[split]:
            raise UserError(f"dataset.root={root} has no images under {split}/<class>/ (.jpg, .jpeg or .png)")
    present = [s for s in SPLITS if found[s]]
    train_classes = sorted(found["train"])
    for split in present[1:]:
        classes = sorted(found[split])
        if classes != train_classes:
            only_train = sorted(set(train_classes) - set(classes))
            only_other = sorted(set(classes) - set(train_classes))
            raise UserError(
                f"dataset.root={root}: train/ and {split}/ need the same class folders; "
                f"only in train: {only_train}, only in {split}: {only_other}"
            )
    rng = np.random.default_rng(ORDER_SEED)
    out = {}
    for split in present:
        items = [
            (c, where, img)
            for c, cls in enumerate(train_classes)
            for where, img in sorted(found[split][cls], key=lambda item: item[0])
        ]
        order = rng.permutation(len(items))
        out[split] = Split(
            np.stack([items[i][2] for i in order]), np.array([items[i][0] for i in order], dtype=np.int64)
        )
    if "val" in out:
        return Splits(train=out["train"], val=out["val"], test=out["test"], classes=tuple(train_classes))
    return Splits(train=out["train"], val=out["test"], test=None, classes=tuple(train_classes))


def _files(root: str) -> Iterator[tuple[str, str, str, Callable[[], bytes]]]:
    """(split, class, where, read) of every image under root/{train,val,test}/<class>/ (root: folder or tarball);
    read() returns its bytes until the next item is drawn."""
    if os.path.isdir(root):
        for split in SPLITS:
            top = os.path.join(root, split)
            for cls in sorted(os.listdir(top)) if os.path.isdir(top) else []:
                folder = os.path.join(top, cls)
                for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                    path = os.path.join(folder, name)
                    if _is_image(name) and os.path.isfile(path):
                        yield split, cls, path, lambda path=path: _read_file(path)
        return
    try:
        with tarfile.open(root, "r:*") as tf:
            for m in tf:
                parts = m.name.split("/")
                # the tree may sit under one top folder inside the archive
                if m.isfile() and len(parts) >= 3 and parts[-3] in SPLITS and _is_image(parts[-1]):
                    yield parts[-3], parts[-2], f"{root}:{m.name}", lambda m=m: tf.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"dataset.root={root} is truncated or not a readable tar archive ({e})") from e


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS) and not name.startswith(".")


def _image(blob: bytes, where: str, image_size: int, channels: int) -> np.ndarray:
    """Decode, convert to L or RGB, resize (bilinear) to image_size²: uint8 [C, H, W]."""
    try:
        img = Image.open(io.BytesIO(blob))
        img = img.convert("L" if channels == 1 else "RGB")
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"cannot decode image {where} ({e}): remove or replace it") from e
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def _cache_path(root: str, image_size: int, channels: int) -> str:
    """A cache file named by what decoding depends on: the source files' paths, sizes, mtimes, and the settings."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{root}|{image_size}|{channels}".encode())
    if os.path.isdir(root):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                st = os.stat(path)
                h.update(f"|{os.path.relpath(path, root)}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        st = os.stat(root)
        h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "regbench", f"imagefolder-{h.hexdigest()[:32]}.npz")


def _read_cache(path: str) -> Splits | None:
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return Splits(
                train=Split(z["train_images"], z["train_labels"]),
                val=Split(z["val_images"], z["val_labels"]),
                test=Split(z["test_images"], z["test_labels"]) if "test_images" in z.files else None,
                classes=tuple(str(c) for c in z["classes"]),
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # unreadable cache: decode again and overwrite it


def _write_cache(path: str, splits: Splits) -> None:
    try:
        arrays = {}
        for name in ("train", "val", "test"):
            split = getattr(splits, name)
            if split is not None:
                arrays.update({f"{name}_images": split.images, f"{name}_labels": split.labels})
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays, classes=np.array(splits.classes, dtype=str))
    except WriteFailed:
        pass  # the cache only saves time; a read-only or full home must not stop a run
