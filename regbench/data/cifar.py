"""CIFAR-10 from the official cifar-10-python.tar.gz (local or through Paddle's downloader), and the reading of
the official CIFAR tarballs' pickled batches that CIFAR-100 (cifar100.py) shares."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from regbench.data.splits import Split, Splits
from regbench.errors import UserError

# the official file, as paddle.vision.datasets.Cifar10 fetches it
URL = "https://dataset.bj.bcebos.com/cifar/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # the dataset authors' page
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
MEMBERS = (*TRAIN_BATCHES, "test_batch", "batches.meta")
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"


def _latin1(text: str, encoding: str) -> bytes:
    """_codecs.encode as Python 3 pickles bytes at protocol <= 2 (e.g. make_cifar10_python.py), latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals pickled numpy arrays need (old and new module paths of _reconstruct), and bytes as above."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1,
    }


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses every other global (no code runs)."""

    allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def has_val(**load: object) -> bool:
    """CIFAR-10 has no val split of its own: its test set is val unless dataset.val_size holds one out."""
    return False


def load_cifar10(data_file: str | None) -> Splits:
    """The 50,000 training images as train and the official 10,000 test images as val (no separate test split)."""
    path = data_file if data_file is not None else download(URL, MD5, ARCHIVE, OFFICIAL_URL)
    batches = read_members(path, FOLDER, MEMBERS, ARCHIVE)
    train = [batch_arrays(path, f"{FOLDER}/{name}", batches[name], b"labels") for name in TRAIN_BATCHES]
    return official_splits(
        path,
        train=Split(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        val=Split(*batch_arrays(path, f"{FOLDER}/test_batch", batches["test_batch"], b"labels")),
        classes=label_names(path, f"{FOLDER}/batches.meta", batches["batches.meta"], b"label_names"),
    )


def official_splits(path: str, train: Split, val: Split, classes: tuple[str, ...]) -> Splits:
    """The training set as train and the official test set as val (no separate test split), labels checked."""
    for name, split in (("train", train), ("test", val)):
        if split.labels.size and not 0 <= split.labels.min() <= split.labels.max() < len(classes):
            raise UserError(f"{path}: {name} has labels outside 0..{len(classes) - 1}; use the official file")
    return Splits(train=train, val=val, test=None, classes=classes)


def read_members(path: str, folder: str, members: tuple[str, ...], archive: str) -> dict[str, object]:
    """Unpickle the members folder/NAME of the tarball `path` (an official `archive`), reading it once, front to back."""
    if not os.path.isfile(path):
        raise UserError(f"dataset.data_file={path} does not exist: point it at {archive}")
    found: dict[str, object] = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                parent, _, name = m.name.rpartition("/")
                if m.isfile() and name in members and parent.endswith(folder):
                    found[name] = _unpickle(path, m.name, tf.extractfile(m).read(), archive)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path} is truncated or not a tar.gz ({e}): download {archive} again") from e
    missing = [n for n in members if n not in found]
    if missing:
        names = ", ".join(f"{folder}/{n}" for n in missing)
        raise UserError(f"{path} lacks {names}: use the official {archive}")
    return found


def _unpickle(path: str, member: str, blob: bytes, archive: str) -> object:
    try:
        return _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # any malformed pickle is bad user data, never a crash
        raise UserError(f"{path}: cannot unpickle {member} ({e}); use the official {archive}") from e


def batch_arrays(path: str, member: str, batch: object, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A batch dict's b'data' [N, 3072] as uint8 [N, 3, 32, 32] and its labels (at label_key) as int64 [N]."""
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(label_key) if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: {member} needs b'data' as uint8 [N, 3072]; use the official file")
    if labels is None or len(labels) != len(data):
        raise UserError(f"{path}: {member} needs {label_key!r} with one label per image; use the official file")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def label_names(path: str, member: str, meta: object, key: bytes) -> tuple[str, ...]:
    """The class names listed at `key` of a meta dict."""
    if not isinstance(meta, dict) or not isinstance(meta.get(key), list):
        raise UserError(f"{path}: {member} has no {key!r} list; use the official file")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[key])


def download(url: str, md5: str, archive: str, official_url: str) -> str:
    """The official `archive` through Paddle's downloader (cached, MD5-checked), or a UserError saying what to do."""
    from paddle.dataset.common import DATA_HOME, download as paddle_download

    try:
        return paddle_download(url, "cifar", md5)
    except Exception as e:  # Paddle's downloader raises RuntimeError offline, other errors on odd networks
        raise UserError(
            f"cannot download {url} into {os.path.join(DATA_HOME, 'cifar')} ({e}): get the official {archive} "
            f"(MD5 {md5}, from {official_url}) and set dataset.data_file=PATH, "
            f"or use dataset=imagefolder dataset.root=DIR dataset.num_classes=N for a folder of images"
        ) from e
