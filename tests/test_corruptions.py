"""Corruption robustness, data side: the CIFAR-10-C layout's reader, `regbench corrupt`, and the summaries."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from regbench.data.cifar_c import COMMON, EXTRA, corruption_names, fingerprint, read_corruptions
from regbench.errors import UserError
from regbench.inference.figures import plot_heatmap
from regbench.inference.robustness import corruption_sets, default_set
from regbench.metrics.corruption import corruption_errors, mean_ce, mean_corruption_error, relative_corruption_errors
from tests.conftest import HD_CORRUPTIONS, HD_EXTRA, regbench

N = 4  # images per severity


def write_layout(folder: Path, names=("gaussian_noise", "fog", "contrast"), n: int = N, size: int = 32,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Files in the official layout: <name>.npy uint8 [5n, size, size, 3], labels.npy [5n] (n labels, 5 times)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: rng.integers(0, 256, (5 * n, size, size, 3), dtype=np.uint8) for name in names}
    for name, images in arrays.items():
        np.save(folder / f"{name}.npy", images)
    np.save(folder / "labels.npy", np.tile(rng.integers(0, 10, n), 5).astype(np.uint8))  # uint8, as the official
    return arrays


def read_all(folder: Path, **kw) -> list:
    return list(read_corruptions(folder, **{"image_size": 32, "channels": 3, "num_classes": 10, **kw}))


def test_reader_yields_every_corruption_and_severity_laid_out_as_the_loaders(tmp_path: Path) -> None:
    arrays = write_layout(tmp_path)
    labels = np.load(tmp_path / "labels.npy")
    assert corruption_names(tmp_path) == ["contrast", "fog", "gaussian_noise"]
    got = read_all(tmp_path)
    assert [(name, s) for name, s, _ in got] == [(n, s) for n in ("contrast", "fog", "gaussian_noise")
                                                 for s in range(1, 6)]
    for name, severity, split in got:
        assert split.images.dtype == np.uint8 and split.images.shape == (N, 3, 32, 32)  # [N, C, H, W]
        assert split.labels.dtype == np.int64 and list(split.labels) == list(labels[:N])
        for i in range(N):  # pixel (y, x) of channel c of image i is the file's [block + i, y, x, c]
            row = (severity - 1) * N + i
            assert split.images[i, 2, 5, 7] == arrays[name][row, 5, 7, 2]
            assert (split.images[i].transpose(1, 2, 0) == arrays[name][row]).all()
    only = read_all(tmp_path, names=["fog"])
    assert [s for name, s, _ in only] == [1, 2, 3, 4, 5] and {name for name, _, _ in only} == {"fog"}


def test_reader_reads_grey_files_for_one_channel_runs(tmp_path: Path) -> None:
    np.save(tmp_path / "blur.npy", np.zeros((10, 32, 32, 1), np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(10, np.int64))
    assert read_all(tmp_path, channels=1)[0][2].images.shape == (2, 1, 32, 32)


def _no_labels(d: Path) -> None:
    (d / "labels.npy").unlink()


def _no_corruption(d: Path) -> None:
    for p in d.glob("*.npy"):
        if p.name != "labels.npy":
            p.unlink()


def _save(name: str, array: np.ndarray):
    return lambda d: np.save(d / name, array)


@pytest.mark.parametrize("spoil, message", [
    (_no_labels, "has no labels.npy: the CIFAR-10-C layout has labels.npy [5n]"),
    (_no_corruption, "has labels.npy but no <corruption>.npy"),
    (_save("fog.npy", np.zeros((5 * N, 32, 32), np.uint8)), "fog.npy is uint8 [20, 32, 32]: it must be uint8 [5n, H, W, 3]"),
    (_save("fog.npy", np.zeros((5 * N, 32, 32, 3), np.float32)), "fog.npy is float32"),
    (_save("fog.npy", np.zeros((5 * N - 1, 32, 32, 3), np.uint8)), "fog.npy has 19 images but labels.npy has 20 labels"),
    (_save("labels.npy", np.zeros(5 * N - 1, np.int64)), "labels.npy is int64 [19]: it must hold 5n integer labels"),
    (_save("labels.npy", np.arange(5 * N) % 10), "its five blocks of 4 labels differ"),
    (_save("labels.npy", np.full(5 * N, 10)), "labels outside 0..9"),
    (_save("fog.npy", np.zeros((5 * N, 28, 28, 3), np.uint8)), "fog.npy holds 28x28x3 images but the run's dataset has 32x32x3"),
])
def test_reader_refuses_files_off_the_layout_in_one_line(tmp_path: Path, spoil, message: str) -> None:
    write_layout(tmp_path)
    spoil(tmp_path)
    with pytest.raises(UserError) as err:
        read_all(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


class _Opens:
    """Unpickling it creates the file `path`: a stand-in for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_reader_never_unpickles(tmp_path: Path) -> None:
    write_layout(tmp_path)
    marker = tmp_path / "unpickled"
    np.save(tmp_path / "fog.npy", np.array([_Opens(marker)] * 5 * N, dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="cannot read .*fog.npy .*write it with numpy.save as a plain array"):
        read_all(tmp_path)
    assert not marker.exists()


def test_reader_memory_maps(tmp_path: Path) -> None:
    write_layout(tmp_path)
    from regbench.data.cifar_c import _images

    assert isinstance(_images(tmp_path / "fog.npy", 5 * N, 32, 3), np.memmap)


# errors at severities 1-5, computed by hand below
ERRORS = {"fog": [0.1, 0.2, 0.3, 0.4, 0.5], "contrast": [0.2, 0.2, 0.2, 0.2, 0.2]}
BASELINE = {"fog": [0.2, 0.2, 0.2, 0.2, 0.2], "contrast": [0.1, 0.1, 0.1, 0.1, 0.1], "snow": [0.3] * 5}


def test_mean_corruption_error_is_the_plain_mean_over_corruptions_and_severities() -> None:
    # (0.1 + 0.2 + 0.3 + 0.4 + 0.5 + 5 * 0.2) / 10 = 2.5 / 10
    assert mean_corruption_error(ERRORS) == pytest.approx(0.25)
    assert mean_corruption_error({"fog": [0.0, 0.0, 0.0, 0.0, 1.0]}) == pytest.approx(0.2)


def test_corruption_errors_divide_summed_errors_by_the_baselines() -> None:
    ces = corruption_errors(ERRORS, BASELINE)
    # fog: 1.5 / 1.0; contrast: 1.0 / 0.5; the baseline's extra corruption (snow) is not ours and is left out
    assert ces == {"fog": pytest.approx(1.5), "contrast": pytest.approx(2.0)}
    assert mean_ce(ces) == pytest.approx(1.75)
    assert corruption_errors(BASELINE, BASELINE) == {"fog": 1.0, "contrast": 1.0, "snow": 1.0}


def test_corruption_errors_refuse_what_they_cannot_compare() -> None:
    with pytest.raises(UserError, match="no scores under snow"):
        corruption_errors({"snow": [0.1] * 5}, ERRORS)
    with pytest.raises(UserError, match="makes no error under fog"):
        corruption_errors(ERRORS, {"fog": [0.0] * 5, "contrast": [0.1] * 5})
    with pytest.raises(ValueError, match="one error per severity"):
        mean_corruption_error({"fog": [0.1, 0.2]})


def test_relative_corruption_errors_divide_the_degradations_from_the_clean_errors() -> None:
    # ours, clean error 0.1: fog Σ(E − 0.1) = 1.5 − 0.5 = 1.0, contrast 1.0 − 0.5 = 0.5
    # baseline, clean error 0.05: fog 1.0 − 0.25 = 0.75, contrast 0.5 − 0.25 = 0.25
    relative = relative_corruption_errors(ERRORS, 0.1, BASELINE, 0.05)
    assert relative == {"fog": pytest.approx(1.0 / 0.75), "contrast": pytest.approx(0.5 / 0.25)}
    assert mean_ce(relative) == pytest.approx((4 / 3 + 2) / 2)
    # a baseline whose errors under contrast do not exceed its clean error has no degradation to divide by
    flat = relative_corruption_errors(ERRORS, 0.1, BASELINE, 0.1)
    assert flat["contrast"] is None and flat["fog"] == pytest.approx(1.0 / 0.5) and mean_ce(flat) is None


def test_the_official_names_split_into_the_15_and_the_4_extra_ones() -> None:
    assert COMMON == HD_CORRUPTIONS and EXTRA == HD_EXTRA
    every = sorted(HD_CORRUPTIONS + HD_EXTRA)
    sets = corruption_sets(every)
    assert sets == {"common": sorted(HD_CORRUPTIONS), "extra": sorted(HD_EXTRA), "all": every}
    assert default_set(sets) == "common"
    # regbench corrupt --corruptions fog,spatter: one of each
    assert corruption_sets(["fog", "spatter"]) == {"common": ["fog"], "extra": ["spatter"], "all": ["fog", "spatter"]}
    own = corruption_sets(["blank", "same"])  # a folder of one's own corruptions is averaged whole
    assert own == {"all": ["blank", "same"]} and default_set(own) == "all"


def test_regbench_corrupt_writes_the_official_names() -> None:
    from regbench.data.corrupt_split import choose, library

    assert tuple(choose(None)) == HD_CORRUPTIONS  # its default: the 15
    assert tuple(library().get_corruption_names("validation")) == HD_EXTRA


def test_the_fingerprint_changes_when_a_file_is_written_again(tmp_path: Path) -> None:
    write_layout(tmp_path)
    before = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == before
    time.sleep(0.05)  # past the clock tick that stamped the first write (Linux: a few ms)
    np.save(tmp_path / "fog.npy", np.load(tmp_path / "fog.npy"))  # the same bytes, written again
    assert fingerprint(tmp_path) != before
    again = fingerprint(tmp_path)
    (tmp_path / "contrast.npy").unlink()
    assert fingerprint(tmp_path) != again


def test_heatmap_is_a_png_with_a_row_per_corruption(tmp_path: Path) -> None:
    plot_heatmap(tmp_path / "h.png", ERRORS, "errors")
    few = Image.open(tmp_path / "h.png")
    plot_heatmap(tmp_path / "h15.png", {f"c{i}": [i / 15] * 5 for i in range(15)}, "errors")
    many = Image.open(tmp_path / "h15.png")
    assert few.format == many.format == "PNG" and many.height > few.height


# --- regbench corrupt, as a user runs it ---------------------------------------------------------------------

CORRUPT = ("corrupt", "dataset=cifar10", "dataset.val_size=50", "dataset.limit.test=6",
           "--corruptions", "gaussian_noise,contrast")


@pytest.fixture(scope="module")
def written(cifar_tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("c") / "cifar10-c"
    proc = regbench(*CORRUPT, f"dataset.data_file={cifar_tarball}", "--out", str(out))
    assert "[1/2] gaussian_noise: 5 x 6 images" in proc.stderr and "[2/2] contrast" in proc.stderr
    return out


def test_corrupt_writes_the_official_layout_from_the_test_split(written: Path, cifar_tarball: Path) -> None:
    from omegaconf import OmegaConf

    from regbench.data import load_splits
    from regbench.config import compose

    cfg = compose(["dataset=cifar10", f"dataset.data_file={cifar_tarball}", "dataset.val_size=50",
                   "dataset.limit.test=6"])
    test = load_splits(cfg.dataset).test
    assert corruption_names(written) == ["contrast", "gaussian_noise"]
    assert np.load(written / "gaussian_noise.npy").shape == (30, 32, 32, 3)
    got = {(name, s): split for name, s, split in read_all(written)}
    assert len(got) == 10
    for split in got.values():
        assert (split.labels == test.labels).all()
    noise = [np.abs(got["gaussian_noise", s].images.astype(int) - test.images).mean() for s in range(1, 6)]
    assert noise[0] > 0 and noise == sorted(noise)  # gaussian noise grows with severity
    assert OmegaConf.create((written / "source.json").read_text()).split == "test"


def test_corrupt_is_reproducible_from_the_seed(written: Path, cifar_tarball: Path, tmp_path: Path) -> None:
    args = (*CORRUPT, f"dataset.data_file={cifar_tarball}")
    regbench(*args, "--out", str(tmp_path / "same"))
    regbench(*args, "seed=1", "--out", str(tmp_path / "other"))
    for name in ("gaussian_noise.npy", "contrast.npy", "labels.npy"):
        assert (written / name).read_bytes() == (tmp_path / "same" / name).read_bytes()
    assert (written / "gaussian_noise.npy").read_bytes() != (tmp_path / "other" / "gaussian_noise.npy").read_bytes()
    assert (written / "contrast.npy").read_bytes() == (tmp_path / "other" / "contrast.npy").read_bytes()  # no draws


@pytest.mark.parametrize("args, message", [
    (("--corruptions", "rain"), "--corruptions rain: unknown rain; choose among gaussian_noise"),
    (("dataset=mnist5k", "dataset.image_size=28"), "the images are 28x28 but imagecorruptions needs at least 32x32: "
                           "add dataset.image_size=32"),
])
def test_corrupt_bad_input_is_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    proc = regbench("corrupt", "dataset.limit.test=2", *args, "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("regbench: error: ")
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_corrupt_writes_grey_images_for_grey_datasets(tmp_path: Path) -> None:
    regbench("corrupt", "dataset=mnist5k", "dataset.limit.test=3", "--corruptions", "fog", "--out", str(tmp_path))
    assert np.load(tmp_path / "fog.npy").shape == (15, 32, 32, 1)
    assert [s for _, s, _ in read_all(tmp_path, channels=1)] == [1, 2, 3, 4, 5]


def test_corrupt_keeps_a_folder_of_other_images(written: Path, cifar_tarball: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_layout(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = regbench(*CORRUPT, f"dataset.data_file={cifar_tarball}", "--out", str(out), check=False)
    assert proc.returncode == 2 and "already holds corrupted files of other images" in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_corrupt_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    blocker = tmp_path / "without"  # an imagecorruptions that fails to import, first on the path: as if absent
    (blocker / "imagecorruptions").mkdir(parents=True)
    (blocker / "imagecorruptions" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    proc = regbench("corrupt", "--out", str(tmp_path / "out"), check=False, env=env)
    assert proc.returncode == 2 and not (tmp_path / "out").exists()
    assert proc.stderr.strip() == "regbench: error: regbench corrupt needs imagecorruptions: pip install 'regbench[corrupt]'"
