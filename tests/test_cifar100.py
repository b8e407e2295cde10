"""CIFAR-100 from a tarball written in the official layout: fine and coarse labels, bad files, the CLI."""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import read_json, regbench, write_cifar100_tarball
from regbench.config import compose
from regbench.data import load_splits
from regbench.data.cifar100 import load_cifar100
from regbench.errors import UserError


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cifar100_tarball(tmp_path_factory.mktemp("c100") / "cifar-100-python.tar.gz")


def members(path: Path) -> dict[str, dict]:
    with tarfile.open(path) as tf:
        return {m.name.rsplit("/", 1)[1]: pickle.load(tf.extractfile(m), encoding="bytes") for m in tf}


@pytest.mark.parametrize("label, classes", [("fine", 100), ("coarse", 20)])
def test_official_layout_with_fine_or_coarse_labels(tarball: Path, label: str, classes: int) -> None:
    written = members(tarball)
    s = load_cifar100(str(tarball), label)
    np.testing.assert_array_equal(s.train.images, written["train"][b"data"].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(s.val.images, written["test"][b"data"].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(s.train.labels, written["train"][f"{label}_labels".encode()])
    np.testing.assert_array_equal(s.val.labels, written["test"][f"{label}_labels".encode()])
    assert s.test is None and len(s.classes) == classes and s.classes[1] == f"{label}_01"
    assert s.train.labels.dtype == np.int64


@pytest.mark.parametrize("label, classes", [("fine", 100), ("coarse", 20)])
def test_config_sets_the_class_count_from_the_label_kind(tarball: Path, label: str, classes: int) -> None:
    cfg = compose(["dataset=cifar100", f"dataset.data_file={tarball}", f"dataset.label={label}",
                   "dataset.val_size=0.2"])
    assert cfg.dataset.num_classes == classes and cfg.model.num_classes == classes
    assert len(load_splits(cfg.dataset).classes) == classes


def test_booby_trapped_pickle_is_refused_by_the_shared_unpickler(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class FileMaker:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        blob = pickle.dumps({b"data": FileMaker()}, protocol=2)
        info = tarfile.TarInfo("cifar-100-python/train")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(UserError, match="evil.tar.gz: cannot unpickle cifar-100-python/train.*refusing"):
        load_cifar100(str(path), "fine")
    assert not marker.exists()


def test_missing_truncated_and_incomplete_files_name_the_official_archive(tmp_path: Path, tarball: Path) -> None:
    with pytest.raises(UserError, match="nothing.tar.gz does not exist: point it at cifar-100-python.tar.gz"):
        load_cifar100(str(tmp_path / "nothing.tar.gz"), "fine")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tarball.read_bytes()[: tarball.stat().st_size // 2])
    with pytest.raises(UserError, match="cut.tar.gz is truncated.*download cifar-100-python.tar.gz again"):
        load_cifar100(str(cut), "fine")
    partial = tmp_path / "partial.tar.gz"
    with tarfile.open(partial, "w:gz") as tar:
        blob = pickle.dumps({b"fine_label_names": []}, protocol=2)
        info = tarfile.TarInfo("cifar-100-python/meta")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(UserError, match="lacks cifar-100-python/train, cifar-100-python/test"):
        load_cifar100(str(partial), "fine")


@pytest.mark.slow
def test_offline_download_error_names_the_archive_its_md5_and_data_file(tmp_path: Path) -> None:
    """No network here (CI has none but PyPI): Paddle's downloader fails, the message says what to do instead."""
    proc = regbench("train", "dataset=cifar100", "model=mynet", f"hydra.run.dir={tmp_path / 'run'}",
                    cwd=tmp_path, check=False, timeout=900,
                    env={"HOME": str(tmp_path), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"})
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "cifar-100-python.tar.gz (MD5 eb9058c3a382ffc7106e4002c42a8d85, from https://www.cs.toronto.edu/" in out
    assert "dataset.data_file=PATH" in out and "Traceback" not in out


def test_unknown_label_kind_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = regbench("train", "dataset=cifar100", "dataset.label=medium", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "dataset.label='medium' is invalid: it must be fine or coarse" in proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_trains_on_cifar100_from_the_cli(tmp_path: Path, tarball: Path) -> None:
    run = tmp_path / "run"
    regbench("train", "dataset=cifar100", f"dataset.data_file={tarball}", "dataset.label=coarse", "model=mynet",
             "dataset.val_size=0.2", "reg=[dropblock,cutout]", "trainer.max_steps=3", "trainer.batch_size=32",
             f"hydra.run.dir={run}",
             cwd=tmp_path)
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["dataset"] == "cifar100"
    assert summary["reg"] == "dropblock+cutout"
    assert summary["total_params"] == 159_498 - 65 * 10 + 65 * 20  # MyNet's last fc sized for 20 superclasses
