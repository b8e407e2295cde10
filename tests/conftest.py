"""Shared test helpers: running the real CLI in a subprocess, and where the shared real data lives."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# the cores this test session may run on, before a pytest-xdist worker keeps to its share of them
ALL_CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker (`python -m pytest -n 2`) keeps to its share of the cores, and so do the processes its
    tests start (they inherit it): as the jobs of a parallel sweep do, the workers' Paddle kernels do not fight over
    the cores, and each run's trainer.threads=auto is its share. A test marked all_cores has them all back."""
    worker, workers = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker and workers > 1 and len(ALL_CORES) >= workers:
        os.sched_setaffinity(0, ALL_CORES[int(worker.removeprefix("gw")) % workers::workers])


# the modules that take longest (python -m pytest --durations=0), started first: under pytest-xdist's file-by-file
# distribution (pyproject.toml's addopts) the workers then end together. The order changes no result.
LONGEST_FIRST = ("test_eval_export", "test_track", "test_faults", "test_readme", "test_multinode", "test_combine",
                 "test_distributed", "test_eval_robustness", "test_cli", "test_reproduce", "test_launchers",
                 "test_resume_config", "test_models_imagenet", "test_selftest", "test_league")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: each module's tests keep their order


@pytest.fixture(autouse=True)
def _all_cores_when_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every core of the session for a test marked all_cores, its worker's share again after it."""
    if not request.node.get_closest_marker("all_cores") or not ALL_CORES:
        yield
        return
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, ALL_CORES)
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)


def regbench(*args: str, cwd: Path | None = None, check: bool = True, timeout: float = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m regbench ARGS` as a user would; fail the test with its output when check and rc != 0."""
    proc = subprocess.run([sys.executable, "-m", "regbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        pytest.fail(f"regbench {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def trained_sweep(folder: Path, *overrides: str) -> Path:
    """`folder` holding the sweep `regbench train -m OVERRIDES` trained (keep it short: a few steps)."""
    regbench("train", "-m", *overrides, f"hydra.sweep.dir={folder}")
    return folder


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_cifar_tarball(path: Path, n_train: int = 500, n_test: int = 100, seed: int = 0) -> Path:
    """A cifar-10-python.tar.gz in the official layout (5 pickled data batches, test_batch, batches.meta)."""
    import io
    import pickle
    import tarfile

    import numpy as np

    rng = np.random.default_rng(seed)
    classes = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]

    def batch(n: int, label: str) -> dict:
        labels = rng.integers(0, 10, n)
        # class-dependent mean colour plus noise: learnable, like real images only in format
        data = np.clip(labels[:, None] * 20 + rng.normal(30, 40, (n, 3072)), 0, 255).astype(np.uint8)
        return {b"batch_label": label.encode(), b"labels": labels.tolist(), b"data": data,
                b"filenames": [f"img_{i}.png".encode() for i in range(n)]}

    def add(tar: tarfile.TarFile, name: str, obj: Any) -> None:
        blob = pickle.dumps(obj, protocol=2)
        info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))

    with tarfile.open(path, "w:gz") as tar:
        for b in range(5):
            add(tar, f"data_batch_{b + 1}", batch(n_train // 5, f"training batch {b + 1} of 5"))
        add(tar, "test_batch", batch(n_test, "testing batch 1 of 1"))
        add(tar, "batches.meta", {b"label_names": classes, b"num_cases_per_batch": n_train // 5, b"num_vis": 3072})
    return path


@pytest.fixture(scope="session")
def cifar_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cifar_tarball(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz")


def write_cifar100_tarball(path: Path, n_train: int = 500, n_test: int = 100, seed: int = 0) -> Path:
    """A cifar-100-python.tar.gz in the official layout: cifar-100-python/{train, test, meta}, pickled dicts with
    b'data', b'fine_labels', b'coarse_labels' (each fine class inside one superclass, as in the real set)."""
    import io
    import pickle
    import tarfile

    import numpy as np

    rng = np.random.default_rng(seed)
    fine_names = [f"fine_{i:02d}".encode() for i in range(100)]
    coarse_names = [f"coarse_{i:02d}".encode() for i in range(20)]

    def batch(n: int, label: str) -> dict:
        fine = rng.integers(0, 100, n)
        data = np.clip(fine[:, None] * 2 + rng.normal(30, 40, (n, 3072)), 0, 255).astype(np.uint8)
        return {b"filenames": [f"img_{i}.png".encode() for i in range(n)], b"batch_label": label.encode(),
                b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist(), b"data": data}

    with tarfile.open(path, "w:gz") as tar:
        for name, obj in (("train", batch(n_train, "training batch 1 of 1")), ("test", batch(n_test, "testing batch 1 of 1")),
                          ("meta", {b"fine_label_names": fine_names, b"coarse_label_names": coarse_names})):
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


# the files of the official CIFAR-10-C and CIFAR-100-C folders besides labels.npy: Hendrycks & Dietterich's 15
# corruptions (Table 1 of their paper), then the 4 extra ones the folders add
HD_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
                  "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
                  "jpeg_compression")
HD_EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


def write_corruption_folder(folder: Path, images: Any, labels: Any, names: Any = HD_CORRUPTIONS + HD_EXTRA,
                            seed: int = 0) -> Path:
    """A split's `images` (uint8 [n, C, H, W]) and `labels` in the official CIFAR-10-C layout, one file per name:
    the k-th of K corruptions at severity s blends each image with seeded uniform noise, weight 1/4 + 3/4 s (k + 1) /
    5K, so that the errors grow along `names` and with severity, each well above the clean error."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = images.transpose(0, 2, 3, 1).astype(np.float64)  # [n, H, W, C], as the layout stores them
    for k, name in enumerate(names):
        blocks = []
        for s in range(1, 6):
            weight = 0.25 + 0.75 * s * (k + 1) / (5 * len(names))
            noise = rng.integers(0, 256, pixels.shape)
            blocks.append(np.round((1 - weight) * pixels + weight * noise).astype(np.uint8))
        np.save(folder / f"{name}.npy", np.concatenate(blocks))
    np.save(folder / "labels.npy", np.tile(np.asarray(labels), 5).astype(np.uint8))  # uint8, as the official
    return folder


def run_folders(tmp_path: Path, arguments: list[str]) -> list[Path]:
    """The .hydra/ files Hydra writes for each job of `regbench train ARGUMENTS`, as the CLI composes them first."""
    from omegaconf import OmegaConf

    from regbench.preflight import command_jobs

    folders = []
    for job in command_jobs(arguments):
        folder = tmp_path / str(job.num) / ".hydra"
        folder.mkdir(parents=True)
        task = OmegaConf.masked_copy(job.cfg, [k for k in job.cfg if k != "hydra"])
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(task))
        (folder / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.masked_copy(job.cfg, "hydra")))
        (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(job.cfg.hydra.overrides.task))
        folders.append(folder.parent)
    return folders


def ece_by_loop(probs: Any, labels: Any, bins: int = 15) -> float:
    """ECE written out: for each bin [b/bins, (b+1)/bins) (the last closed), its members' accuracy and mean
    confidence, weighted by the fraction of samples in it."""
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [i for i in range(len(labels))
                   if low <= max(probs[i]) < high or (b == bins - 1 and max(probs[i]) == 1.0)]
        if members:
            right = sum(1.0 for i in members if list(probs[i]).index(max(probs[i])) == labels[i]) / len(members)
            confident = sum(float(max(probs[i])) for i in members) / len(members)
            total += len(members) / len(labels) * abs(right - confident)
    return total


def load_folder(root: Path | str, image_size: int, channels: int = 3, dataset: str = "imagefolder", **overrides: Any):
    """regbench.data.imagefolder.load_imagefolder as conf/dataset/DATASET.yaml sets it up, with dataset.KEY=VALUE
    overrides: the Splits (in memory or streamed) of the folder or archive `root`."""
    from hydra import compose, initialize_config_dir

    from regbench.data import load_raw

    def value(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    args = [f"+dataset={dataset}", f"dataset.root={root}", f"dataset.image_size={image_size}",
            f"dataset.channels={channels}", *(f"dataset.{k}={value(v)}" for k, v in overrides.items())]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return load_raw(compose(overrides=args).dataset.load)


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mnist5k test split in the CIFAR-10-C layout: `same` (the clean images at every severity) and `blank`."""
    import numpy as np

    from regbench.config import compose
    from regbench.data import load_splits

    test = load_splits(compose(["dataset=mnist5k"]).dataset).test
    folder = tmp_path_factory.mktemp("c")
    images = test.images.transpose(0, 2, 3, 1)
    np.save(folder / "same.npy", np.concatenate([images] * 5))
    np.save(folder / "blank.npy", np.zeros((5 * len(test), 32, 32, 1), np.uint8))
    np.save(folder / "labels.npy", np.tile(test.labels, 5))
    return folder
