"""The official image-folder layouts: ImageNet's train/ + val/ (dataset=imagenet, imagenette) and tiny-imagenet-200
(dataset=tiny_imagenet), in memory and streamed; val/ scored as the test split; their one-line errors."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from conftest import REPO, load_folder, read_json, regbench
from folders import COLOURS, WNIDS, imagenet_tree, label_colours, tiny_imagenet_tree
from regbench.data import in_memory, load_splits
from regbench.data.splits import Split
from regbench.data.stream import FileSplit
from regbench.errors import UserError

SORTED = tuple(sorted(WNIDS))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def splits_of(dataset: str, root: Path, *overrides: str):
    """load_splits of conf/dataset/DATASET.yaml at 32 px (val carved from train, limits, checks)."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(overrides=[f"+dataset={dataset}", f"dataset.root={root}", "dataset.image_size=32",
                                 "dataset.resize_size=36", "dataset.num_classes=3", *overrides])
    return load_splits(cfg.dataset)


@pytest.mark.parametrize("dataset", ["imagenet", "imagenette", "tiny_imagenet"])
def test_official_layouts_val_is_the_test_split_and_val_is_carved_from_train(tmp_path: Path, dataset: str) -> None:
    make = tiny_imagenet_tree if dataset == "tiny_imagenet" else imagenet_tree
    root = make(tmp_path / dataset)
    raw = load_folder(root, 32, dataset=dataset, resize_size=36, in_memory=True)
    assert raw.classes == SORTED  # sorted wnids, as torchvision's ImageFolder (not wnids.txt's order)
    assert (len(raw.train), len(raw.val), raw.test) == (24, 9, None)  # test/ (unlabelled) is not read
    assert raw.train.images.shape[1:] == (3, 32, 32)
    for split in (raw.train, raw.val):
        assert label_colours(split.images, split.labels, raw.classes) < 12
        assert np.bincount(split.labels).tolist() == ([8, 8, 8] if split is raw.train else [3, 3, 3])
    memory = splits_of(dataset, root, "dataset.val_size=6", "dataset.in_memory=true")
    streamed = splits_of(dataset, root, "dataset.val_size=6", "dataset.in_memory=false")
    assert isinstance(memory.train, Split) and isinstance(streamed.train, FileSplit)
    for s in (memory, streamed):
        assert (len(s.train), len(s.val), len(s.test)) == (18, 6, 9)
        assert np.bincount(s.val.labels).tolist() == [2, 2, 2]  # stratified
    for name in ("train", "val", "test"):  # the same files in the same order, whether decoded or streamed
        a, b = getattr(memory, name), getattr(streamed, name)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.images, in_memory(b).images)
    np.testing.assert_array_equal(memory.test.labels, raw.val.labels)


def test_imagenet_transform_resizes_the_shorter_side_and_cuts_the_centre(tmp_path: Path) -> None:
    root = tmp_path / "wide"
    imagenet_tree(root, train=1, val=1)
    left = np.zeros((40, 100, 3), np.uint8)
    left[:, :50] = 255  # white left half: the centre crop of a 2.5:1 image holds both halves equally
    from PIL import Image

    path = next((root / "train" / SORTED[0]).glob("*.JPEG"))
    Image.fromarray(left).save(path.with_suffix(".png"))
    path.unlink()
    s = load_folder(root, 20, dataset="imagenet", resize_size=20, in_memory=True)
    img = s.train.images[s.train.labels == 0][0]
    assert img.shape == (3, 20, 20)
    assert img[:, :, :9].min() > 200 and img[:, :, 11:].max() < 50  # half white, half black: the centre
    squashed = load_folder(root, 20, dataset="imagenet", transform="resize", in_memory=True)
    assert (squashed.train.images[squashed.train.labels == 0][0][:, :, :9] > 200).all()


def test_layout_errors_are_one_line(tmp_path: Path) -> None:
    root = imagenet_tree(tmp_path / "inet", train=2, val=1)
    shutil.rmtree(root / "val")
    with pytest.raises(UserError, match=r"has no images under val/<class>/.*ImageNet layout"):
        load_folder(root, 32, dataset="imagenet")
    with pytest.raises(UserError, match=r"dataset.root=.*nowhere does not exist: point it at the official tiny"):
        load_folder(tmp_path / "nowhere", 32, dataset="tiny_imagenet")
    tiny = tiny_imagenet_tree(tmp_path / "tiny", train=2, val=1)
    annotations = tiny / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_0.JPEG\tn09999999\t0\t0\t1\t1\n")
    with pytest.raises(UserError, match=r"val_annotations.txt line 4 labels val_0.JPEG n09999999, a wnid wnids.txt "
                                        r"does not list"):
        load_folder(tiny, 32, dataset="tiny_imagenet")
    (tiny / "wnids.txt").unlink()
    with pytest.raises(UserError, match=r"has no wnids.txt: point it at the official tiny-imagenet-200 folder"):
        load_folder(tiny, 32, dataset="tiny_imagenet")


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_corrupt_jpeg_fails_named_or_is_skipped_with_a_warning(tmp_path: Path, in_memory: bool,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    root = imagenet_tree(tmp_path / "inet", train=4, val=2)
    bad = root / "train" / SORTED[1] / "broken.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    truncated = root / "val" / SORTED[2] / "truncated.JPEG"
    truncated.write_bytes(next((root / "val" / SORTED[2]).glob("ILSVRC*")).read_bytes()[:300])
    from regbench.data.batches import BatchLoader

    def every_batch(splits) -> list[np.ndarray]:
        out = []
        for split in (splits.train, splits.val):
            bl = BatchLoader(split, 5, [0.5] * 3, [0.5] * 3, crop_padding=0, resized_crop_scale=(0.08, 1.0))
            out += [y.numpy() for _, y in bl.epoch(seed=None)]
        return out

    with pytest.raises(UserError, match=r"cannot decode image .*broken.JPEG .*dataset.on_bad_image=skip"):
        every_batch(load_folder(root, 32, dataset="imagenet", resize_size=36, in_memory=in_memory))
    caplog.set_level(logging.WARNING, logger="regbench")
    splits = load_folder(root, 32, dataset="imagenet", resize_size=36, in_memory=in_memory, on_bad_image="skip")
    labels = np.concatenate(every_batch(splits))
    assert len(labels) == 12 + 6  # the two bad files left out
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "broken.JPEG" in warned and "truncated.JPEG" in warned and "skipped" in warned


def test_in_memory_auto_streams_what_does_not_fit(tmp_path: Path) -> None:
    root = imagenet_tree(tmp_path / "inet", train=2, val=1)  # 9 images: 9 × 32² × 3 B = 27 kB
    assert isinstance(load_folder(root, 32, dataset="imagenet", memory_limit_mb=0.03).train, Split)
    assert isinstance(load_folder(root, 32, dataset="imagenet", memory_limit_mb=0.02).train, FileSplit)
    shutil.make_archive(str(tmp_path / "inet"), "gztar", root_dir=tmp_path, base_dir="inet")
    archive = tmp_path / "inet.tar.gz"
    assert isinstance(load_folder(archive, 32, dataset="imagenet", memory_limit_mb=0).train, Split)
    with pytest.raises(UserError, match="in_memory=false streams images from a folder.*extract it"):
        load_folder(archive, 32, dataset="imagenet", in_memory=False)


@pytest.mark.slow
def test_imagenette_trains_and_scores_val_as_the_test_split_through_the_cli(tmp_path: Path) -> None:
    root = imagenet_tree(tmp_path / "imagenette2", train=6, val=2)
    run = tmp_path / "run"
    regbench("train", "model=mynet", "dataset=imagenette", f"dataset.root={root}", "dataset.num_classes=3",
             "dataset.image_size=32", "dataset.resize_size=36", "dataset.val_size=3", "trainer.batch_size=5",
             "trainer.max_steps=3", f"hydra.run.dir={run}", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["selected_on"] == "val"
    assert summary["test_acc"] is not None  # val/ scored as the test split
    bad = regbench("train", "dataset=tiny_imagenet", f"dataset.root={tmp_path / 'none'}", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "does not exist: point it at the official tiny-imagenet-200 folder" in bad.stdout + bad.stderr
    assert set(COLOURS) == set(WNIDS)
