"""Streamed image folders (dataset.in_memory=false): batches are a function of the seeds, the epoch and the step,
whatever trainer.num_workers; data-parallel shards; the same runs as in memory; a killed run resumes exactly."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import load_folder, read_json, read_jsonl, regbench
from folders import COLOURS, WNIDS, imagenet_tree, jpeg
from regbench.data.batches import BatchLoader
from regbench.data.splits import Split
from regbench.data.stream import FileSplit


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return imagenet_tree(tmp_path_factory.mktemp("stream") / "inet", train=12, val=3)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def loader(split: Split | FileSplit, augment: tuple[str, ...], workers: int = 0,
           shard: tuple[int, int] = (0, 1)) -> BatchLoader:
    return BatchLoader(split, 4, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3], augment=augment, crop_padding=3,
                       resized_crop_scale=(0.2, 1.0), shard=shard, workers=workers)


def pixels(bl: BatchLoader, seed: int | None, start: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in bl.epoch(seed, start=start, augment_seed=None if seed is None else 9)]


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b) > 0
    for (x, y), (u, v) in zip(a, b):
        np.testing.assert_array_equal(x, u)
        np.testing.assert_array_equal(y, v)


def test_resize_transform_streams_the_in_memory_batches_with_any_number_of_workers(tree: Path) -> None:
    memory = load_folder(tree, 24, dataset="imagenet", transform="resize", in_memory=True)
    streamed = load_folder(tree, 24, dataset="imagenet", transform="resize", in_memory=False)
    augment = ("resized_crop", "crop", "flip")
    expected = pixels(loader(memory.train, augment), 11)
    for workers in (0, 2):  # the device augments the decoded batch, in memory or streamed: the same bits
        assert_same(pixels(loader(streamed.train, augment, workers), 11), expected)
    assert_same(pixels(loader(streamed.val, (), 2), None), pixels(loader(memory.val, ()), None))


def test_imagenet_crops_follow_the_seeds_and_the_sample_not_the_worker(tree: Path) -> None:
    streamed = load_folder(tree, 24, dataset="imagenet", resize_size=28, in_memory=False)
    augment = ("resized_crop", "flip")
    one = loader(streamed.train, augment, 0)
    full = pixels(one, 11)
    assert_same(pixels(loader(streamed.train, augment, 2), 11), full)
    assert_same(pixels(one, 11, start=2), full[2:])  # a resumed epoch's tail: the same batches
    other = pixels(one, 12)
    assert not all(np.array_equal(x, u) for (x, _), (u, _) in zip(full, other))
    # the eval transform (shorter side 28, centre 24) unaugmented, in file order
    memory = load_folder(tree, 24, dataset="imagenet", resize_size=28, in_memory=True)
    assert_same(pixels(loader(streamed.val, ()), None), pixels(loader(memory.val, ()), None))


def test_each_sample_of_an_epoch_gets_its_own_crop_box(tmp_path: Path) -> None:
    """Every training file the same image, whose red and green channels are its x and y: the streamed crops of one
    epoch differ only by their boxes, which the corner pixels read back."""
    from PIL import Image

    y, x = np.mgrid[0:48, 0:64]
    image = Image.fromarray(np.stack([x * 4, y * 5, np.full_like(x, 128)], axis=-1).astype(np.uint8))
    for split, n in (("train", 8), ("val", 1)):
        for wnid in WNIDS:
            (tmp_path / split / wnid).mkdir(parents=True)
            for i in range(n):
                image.save(tmp_path / split / wnid / f"{wnid}_{i}.png")
    streamed = load_folder(tmp_path, 16, dataset="imagenet", val_size=0, in_memory=False).train
    bl = BatchLoader(streamed, 4, [0.0] * 3, [1 / 255] * 3, augment=("resized_crop",), crop_padding=0,
                     resized_crop_scale=(0.08, 1.0))
    crops = np.concatenate([x.numpy() for x, _ in bl.epoch(5, augment_seed=9)]).round().astype(int)
    # (left, top, right, bottom) as the corner pixels show them: a box of its own for each of the 24 samples
    boxes = {(c[0, 0, 0] // 4, c[1, 0, 0] // 5, c[0, -1, -1] // 4, c[1, -1, -1] // 5) for c in crops}
    assert len(crops) == 3 * 8 and len(boxes) == len(crops)

def test_data_parallel_ranks_read_disjoint_shards(tree: Path) -> None:
    streamed = load_folder(tree, 16, dataset="imagenet", in_memory=False).train
    n = len(streamed)
    seen = []
    for rank in range(3):
        bl = BatchLoader(streamed, 4, [0.5] * 3, [0.5] * 3, crop_padding=0, resized_crop_scale=(0.08, 1.0),
                         shard=(rank, 3), even_shards=False, workers=rank % 2 * 2)
        labels = np.concatenate([y.numpy() for _, y in bl.epoch(seed=None)])
        np.testing.assert_array_equal(labels, streamed.labels[rank::3])  # positions r, r+w, ...
        seen.append(len(labels))
    assert sum(seen) == n


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_images_are_flagged_on_the_host_and_left_out(tmp_path: Path, workers: int) -> None:
    """The readers' flags reach the batches as a host array (no device tensor read per batch), in the order of the
    index lists, whatever the number of reader processes."""
    root = imagenet_tree(tmp_path / "inet", train=3, val=1)
    broken = next((root / "train").glob("*/*_1.JPEG"))
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    streamed = load_folder(root, 16, dataset="imagenet", in_memory=False, on_bad_image="skip").train
    index_lists = [np.arange(len(streamed))[i:i + 4] for i in range(0, len(streamed), 4)]
    flags = [bad for _, _, bad in streamed.batches(index_lists, None, None, workers)]
    assert all(isinstance(bad, np.ndarray) and bad.dtype == bool for bad in flags)
    paths = [Path(p) for p in streamed.paths]
    assert broken in paths and np.concatenate(flags).tolist() == [p == broken for p in paths]
    labels = np.concatenate([y.numpy() for _, y in loader(streamed, (), workers).epoch(seed=None)])
    np.testing.assert_array_equal(labels, streamed.labels[[p != broken for p in paths]])


TINY = ("model=mynet", "dataset=imagenette", "dataset.num_classes=3", "dataset.image_size=24",
        "dataset.resize_size=28", "dataset.val_size=6", "trainer.batch_size=5", "trainer.eval_every_steps=2",
        "trainer.log_every=1", "trainer.threads=1")


def same_run(a: Path, b: Path) -> None:
    timing = {"train_time_s", "train_img_per_s", "eval_time_s"}
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in read_jsonl(run / "metrics.jsonl")]
            for run in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) >= 2
    sa, sb = read_json(a / "summary.json"), read_json(b / "summary.json")
    for key in ("status", "steps", "best_val_acc", "best_epoch", "final_val_acc", "test_acc", "final_test_acc"):
        assert sa[key] == sb[key], key
    with np.load(a / "checkpoints" / "last.npz") as x, np.load(b / "checkpoints" / "last.npz") as y:
        for key in x.files:
            if key != "__meta__":
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.mark.slow
def test_a_streamed_run_with_cutmix_is_the_in_memory_run(tree: Path, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    for in_memory, workers in (("true", 0), ("false", 2)):
        regbench("train", *TINY, f"dataset.root={tree}", "dataset.transform=resize", "reg=cutmix",
                 f"dataset.in_memory={in_memory}", f"trainer.num_workers={workers}", "trainer.max_steps=4",
                 f"hydra.run.dir={tmp_path / in_memory}", env=env)
    assert "streamed data: 2 reader processes" in (tmp_path / "false" / "train.log").read_text()
    same_run(tmp_path / "false", tmp_path / "true")


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_streamed_run(tree: Path, tmp_path: Path) -> None:
    args = [*TINY, f"dataset.root={tree}", "dataset.in_memory=false", "trainer.num_workers=2", "trainer.epochs=2",
            "reg=mixup"]
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    regbench("train", *args, f"hydra.run.dir={tmp_path / 'full'}", env=env)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "regbench", "train", *args, f"hydra.run.dir={run}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not ((run / "metrics.jsonl").exists() and read_jsonl(run / "metrics.jsonl")):
        assert proc.poll() is None and time.time() < deadline, "training ended early or never evaluated"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in out, out
    assert read_json(run / "summary.json")["status"] == "interrupted"
    with np.load(run / "checkpoints" / "last.npz") as ckpt:
        step = json.loads(str(ckpt["__meta__"]))["trainer"]["step"]
    assert 0 < step < 6 * 2  # 30 training images in batches of 5: stopped inside the 2 epochs of 6 steps
    regbench("train", *args, "trainer.resume=true", f"hydra.run.dir={run}", env=env)
    same_run(run, tmp_path / "full")


def test_eval_of_a_streamed_folder_keeps_the_labels_of_the_images_it_read(tmp_path: Path) -> None:
    """`regbench eval --temperature-scale --save-probs` on a streamed folder whose test/ and val/ each hold one corrupt
    image (dataset.on_bad_image=skip): every figure, the temperature's fit and the saved file are of the images read."""
    rng = np.random.default_rng(5)
    root = tmp_path / "folder"
    for split, count in (("train", 6), ("val", 3), ("test", 4)):
        for wnid, colour in COLOURS.items():
            for i in range(count):
                jpeg(root / split / wnid / f"{i}.jpg", colour, rng, (30, 30))
    bad_test = root / "test" / WNIDS[1] / "broken.jpg"
    bad_test.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "val" / WNIDS[2] / "truncated.jpg").write_bytes((root / "val" / WNIDS[2] / "0.jpg").read_bytes()[:300])
    run = tmp_path / "run"
    regbench("train", "model=mynet", "dataset=imagefolder", f"dataset.root={root}", "dataset.num_classes=3",
             "dataset.image_size=24", "dataset.in_memory=false", "dataset.on_bad_image=skip", "trainer.batch_size=5",
             "trainer.eval_batch_size=4", "trainer.max_steps=2", "trainer.eval_every_steps=2", "trainer.threads=1",
             f"hydra.run.dir={run}", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    proc = regbench("eval", str(run), "--temperature-scale", "--save-probs", str(tmp_path / "test.npz"))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "broken.jpg" in proc.stderr and "truncated.jpg" in proc.stderr
    # the expected labels from the file list: the sorted class folders' index of each readable file's folder
    classes = sorted(p.name for p in (root / "train").iterdir())
    readable = sorted(classes.index(p.parent.name) for p in (root / "test").glob("*/*.jpg") if p != bad_test)
    with np.load(tmp_path / "test.npz", allow_pickle=False) as saved:
        probs, labels = saved["probs"], saved["labels"]
    assert len(readable) == 12 and sorted(labels) == readable and probs.shape == (12, 3)
    # in the order scored: the streamed split's file order, less the corrupt file
    order = [classes.index(Path(p).parent.name) for p in load_folder(root, 24, in_memory=False).test.paths
             if Path(p) != bad_test]
    np.testing.assert_array_equal(labels, order)
    assert (out["split"], out["n"], out["skipped"]) == ("test", 12, 1)
    assert out["accuracy"] == np.mean(probs.argmax(axis=1) == labels)
    assert sum(c is not None for c in out["per_class_accuracy"].values()) == 3
    scaled = out["temperature_scaled"]
    assert (scaled["val_n"], scaled["val_skipped"]) == (9, 1) and scaled["accuracy"] == out["accuracy"]
