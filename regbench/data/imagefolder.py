"""Image folders in three layouts (or a .tar.gz of one): listed, then decoded once into memory and cached, or left as
file lists that stream.py reads per batch (dataset.in_memory).

Layouts: `imagefolder` root/{train,[val],test}/<class>/*; `imagenet` root/{train,val}/<wnid>/*.JPEG (val/ is the set
papers report on: it becomes the test split once dataset.val_size carves a val split out of train);
`tiny_imagenet` the official tiny-imagenet-200 folder (wnids.txt, train/<wnid>/images/*, val/images/* labelled by
val/val_annotations.txt; test/ has no labels and is ignored). Classes are the sorted class folder names (wnids), as
torchvision's ImageFolder orders them, in every layout."""
from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator

import numpy as np

from regbench.data.decode import Decode
from regbench.data.splits import Split, Splits
from regbench.data.stream import BAD_IMAGE, FileSplit, decode_all, warn_skipped
from regbench.errors import UserError
from regbench.atomic_files import WriteFailed, atomic_write

log = logging.getLogger("regbench")

EXTENSIONS = (".jpg", ".jpeg", ".png")
LAYOUTS = {  # the split folders each layout reads, the required ones first
    "imagefolder": ("train", "test", "val"),
    "imagenet": ("train", "val"),
    "tiny_imagenet": ("train", "val"),
}
HINT = {
    "imagefolder": "a folder with train/<class>/ and test/<class>/ (val/<class>/ optional), or a .tar.gz of one",
    "imagenet": "a folder in the ImageNet layout, train/<wnid>/*.JPEG and val/<wnid>/*.JPEG, or a .tar.gz of one",
    "tiny_imagenet": "the official tiny-imagenet-200 folder (wnids.txt, train/, val/val_annotations.txt)",
}
ORDER_SEED = 1234  # fixed: a mixed sample order, so that dataset.limit keeps every class
CACHE_VERSION = 3  # bump when the decoding changes

Found = dict[str, dict[str, list[tuple[str, object]]]]  # split -> class -> [(where, path or decoded image)]


def load_imagefolder(root: str, layout: str, image_size: int, channels: int, transform: str, resize_size: int,
                     crop_size: int, in_memory: bool | str, memory_limit_mb: float, on_bad_image: str) -> Splits:
    """The layout's splits, decoded in memory (in_memory true, or auto when they fit in memory_limit_mb) or as file
    lists streamed per batch; without a val split of its own the test split serves as val (test None)."""
    if layout not in LAYOUTS:
        raise UserError(f"dataset.layout={layout!r} is invalid: it must be one of {', '.join(LAYOUTS)}")
    if on_bad_image not in BAD_IMAGE:
        raise UserError(f"dataset.on_bad_image={on_bad_image!r} is invalid: it must be one of {', '.join(BAD_IMAGE)}")
    if in_memory not in (True, False, "auto"):
        raise UserError(f"dataset.in_memory={in_memory!r} is invalid: it must be auto, true or false")
    decode = Decode(channels, image_size, transform, resize_size, crop_size)
    root = _existing(root, layout)
    if not os.path.isdir(root):  # an archive is read front to back, once: in memory only
        if in_memory is False:
            raise UserError(f"dataset.in_memory=false streams images from a folder, but dataset.root={root} is an "
                            "archive: extract it and point dataset.root at the folder")
        return _cached(root, layout, decode, on_bad_image, lambda: _decoded_archive(root, layout, decode, on_bad_image))
    found = _listing(root, layout)
    items, classes = _ordered(found, root, layout)
    files = {split: FileSplit(np.array([w for _, w, _ in it], dtype=str), np.array([c for c, _, _ in it], np.int64),
                              decode, on_bad_image) for split, it in items.items()}
    n = sum(len(f) for f in files.values())
    mb = n * image_size * image_size * channels / 2**20
    if in_memory is False or (in_memory == "auto" and mb > memory_limit_mb):
        log.info("streaming %d images from %s: decoded they would take %.0f MB (dataset.in_memory=%s, "
                 "dataset.memory_limit_mb=%s)", n, root, mb, in_memory, memory_limit_mb)
        return _assemble(files, layout, classes)

    def decoded() -> tuple[Splits, list[str]]:
        parts = {split: decode_all(f) for split, f in files.items()}
        return (_assemble({s: split for s, (split, _) in parts.items()}, layout, classes),
                [w for _, skipped in parts.values() for w in skipped])

    return _cached(root, layout, decode, on_bad_image, decoded)


def has_val(root: str, layout: str, **load: object) -> bool:
    """Whether the data has a val split of its own: an imagefolder tree with images under val/<class>/ (read from
    file names, none decoded); the ImageNet layouts' val/ is their test set."""
    if layout != "imagefolder":
        return False
    root = _existing(root, layout)
    if os.path.isdir(root):
        return any(_listing(root, layout).get("val", {}).values())
    return any(split == "val" for split, _, _, _ in _archive(root, layout))


def _existing(root: str, layout: str) -> str:
    """root as an absolute path, or a UserError when it does not exist."""
    root = os.path.abspath(root)
    if not os.path.exists(root):
        raise UserError(f"dataset.root={root} does not exist: point it at {HINT.get(layout, HINT['imagefolder'])}")
    if layout == "tiny_imagenet" and not os.path.isdir(root):
        raise UserError(f"dataset.root={root} is a file: extract it and point dataset.root at {HINT[layout]}")
    return root


def _listing(root: str, layout: str) -> Found:
    """split -> class -> [(path, path)] of every image file of a folder in `layout`."""
    if layout == "tiny_imagenet":
        return _tiny_imagenet(root)
    found: Found = {}
    for split in LAYOUTS[layout]:
        top = os.path.join(root, split)
        for cls in sorted(os.listdir(top)) if os.path.isdir(top) else []:
            paths = _images(os.path.join(top, cls))
            if paths:
                found.setdefault(split, {})[cls] = [(p, p) for p in paths]
    return found


def _images(folder: str) -> list[str]:
    """The image files directly in `folder`, sorted (none when it is no folder)."""
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [os.path.join(folder, n) for n in names if _is_image(n) and os.path.isfile(os.path.join(folder, n))]


def _tiny_imagenet(root: str) -> Found:
    """tiny-imagenet-200: train/<wnid>/images/* and val/images/* with val/val_annotations.txt's labels."""
    wnids_file = os.path.join(root, "wnids.txt")
    annotations = os.path.join(root, "val", "val_annotations.txt")
    for need in (wnids_file, os.path.join(root, "train"), annotations):
        if not os.path.exists(need):
            raise UserError(f"dataset.root={root} has no {os.path.relpath(need, root)}: point it at {HINT['tiny_imagenet']}")
    with open(wnids_file) as f:
        wnids = {line.strip() for line in f if line.strip()}
    found: Found = {"train": {}, "val": {}}
    for wnid in sorted(os.listdir(os.path.join(root, "train"))):
        paths = _images(os.path.join(root, "train", wnid, "images"))
        if not paths:
            continue
        if wnid not in wnids:
            raise UserError(f"dataset.root={root}: train/{wnid}/ is a class wnids.txt does not list; "
                            "use the official tiny-imagenet-200 files")
        found["train"][wnid] = [(p, p) for p in paths]
    with open(annotations) as f:
        for n, line in enumerate(f, 1):
            fields = line.strip().split("\t")
            if not fields[0]:
                continue
            if len(fields) < 2:
                raise UserError(f"{annotations} line {n} is not 'file<TAB>wnid...': use the official file")
            name, wnid = fields[:2]
            if wnid not in wnids:
                raise UserError(f"{annotations} line {n} labels {name} {wnid}, a wnid wnids.txt does not list: "
                                "use the official tiny-imagenet-200 files")
            path = os.path.join(root, "val", "images", name)
            if not os.path.isfile(path):
                raise UserError(f"{annotations} line {n} names val/images/{name}, which does not exist")
            found["val"].setdefault(wnid, []).append((path, path))
    return found


def _ordered(found: Found, root: str, layout: str) -> tuple[dict[str, list[tuple[int, str, object]]], tuple[str, ...]]:
    """Each split's (label, where, payload), sorted by class and name, then in a fixed mixed order; the classes."""
    splits = LAYOUTS[layout]
    required = splits[:2]
    for split in required:
        if not found.get(split):
            raise UserError(f"dataset.root={root} has no images under {split}/<class>/ (.jpg, .jpeg or .png): "
                            f"point it at {HINT[layout]}")
    train_classes = sorted(found["train"])
    for split in splits[1:]:
        classes = sorted(found.get(split, {}))
        if classes and classes != train_classes:
            only_train = sorted(set(train_classes) - set(classes))
            only_other = sorted(set(classes) - set(train_classes))
            raise UserError(
                f"dataset.root={root}: train/ and {split}/ need the same class folders; "
                f"only in train: {only_train}, only in {split}: {only_other}"
            )
    rng = np.random.default_rng(ORDER_SEED)
    out = {}
    for split in ("train", "val", "test"):  # the order of the permutations drawn: as the cached data was made
        if found.get(split) and split in splits:
            items = [(c, where, payload) for c, cls in enumerate(train_classes)
                     for where, payload in sorted(found[split][cls], key=lambda item: item[0])]
            out[split] = [items[i] for i in rng.permutation(len(items))]
    return out, tuple(train_classes)


def _assemble(parts: dict, layout: str, classes: tuple[str, ...]) -> Splits:
    """Splits of the layout's split folders: test/ as test when there is a val/ too, else as val (test None); the
    ImageNet layouts' val/ as val (test None: carve_val makes it the test split)."""
    if layout == "imagefolder" and "val" in parts:
        return Splits(train=parts["train"], val=parts["val"], test=parts["test"], classes=classes)
    return Splits(train=parts["train"], val=parts["test" if layout == "imagefolder" else "val"], test=None,
                  classes=classes)


def _decoded_archive(root: str, layout: str, decode: Decode, on_bad_image: str) -> tuple[Splits, list[str]]:
    """An archive's images, decoded in one pass over it; the members skipped as unreadable."""
    found: Found = {}
    skipped: list[str] = []
    for split, cls, where, read in _archive(root, layout):
        try:
            image = decode.image(read(), where)
        except UserError as e:
            if on_bad_image == "fail":
                raise
            log.warning("skipping an unreadable image: %s", e)
            skipped.append(where)
            continue
        found.setdefault(split, {}).setdefault(cls, []).append((where, image))
    items, classes = _ordered(found, root, layout)
    parts = {split: Split(np.stack([img for _, _, img in it]), np.array([c for c, _, _ in it], dtype=np.int64))
             for split, it in items.items()}
    return _assemble(parts, layout, classes), skipped


def _archive(root: str, layout: str) -> Iterator[tuple[str, str, str, Callable[[], bytes]]]:
    """(split, class, where, read) of every image under <top>/<split>/<class>/ of a tarball; read() returns its
    bytes until the next item is drawn."""
    try:
        with tarfile.open(root, "r:*") as tf:
            for m in tf:
                parts = m.name.split("/")
                # the tree may sit under one top folder inside the archive
                if m.isfile() and len(parts) >= 3 and parts[-3] in LAYOUTS[layout] and _is_image(parts[-1]):
                    yield parts[-3], parts[-2], f"{root}:{m.name}", lambda m=m: tf.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"dataset.root={root} is truncated or not a readable tar archive ({e})") from e


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS) and not name.startswith(".")


def _cached(root: str, layout: str, decode: Decode, on_bad_image: str,
            make: Callable[[], tuple[Splits, list[str]]]) -> Splits:
    """The decoded splits from the cache, or made and cached; the images skipped as unreadable named either way."""
    cache = _cache_path(root, f"{layout}|{decode.key()}|{on_bad_image}")
    cached = _read_cache(cache)
    if cached is None:
        splits, skipped = make()
        _write_cache(cache, splits, skipped)
    else:
        splits, skipped = cached
        for where in skipped:
            log.warning("skipping an unreadable image: %s (noted when the cache was made)", where)
    warn_skipped(len(skipped))
    return splits


def _cache_path(root: str, settings: str) -> str:
    """A cache file named by what decoding depends on: the source files' paths, sizes, mtimes, and the settings."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{root}|{settings}".encode())
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


def _read_cache(path: str) -> tuple[Splits, list[str]] | None:
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return Splits(
                train=Split(z["train_images"], z["train_labels"]),
                val=Split(z["val_images"], z["val_labels"]),
                test=Split(z["test_images"], z["test_labels"]) if "test_images" in z.files else None,
                classes=tuple(str(c) for c in z["classes"]),
            ), [str(w) for w in z["skipped"]]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # unreadable cache: decode again and overwrite it


def _write_cache(path: str, splits: Splits, skipped: list[str]) -> None:
    try:
        arrays = {}
        for name in ("train", "val", "test"):
            split = getattr(splits, name)
            if split is not None:
                arrays.update({f"{name}_images": split.images, f"{name}_labels": split.labels})
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays, classes=np.array(splits.classes, dtype=str), skipped=np.array(skipped, dtype=str))
    except WriteFailed:
        pass  # the cache only saves time; a read-only or full home must not stop a run
