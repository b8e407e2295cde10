"""Held-out validation (dataset.val_size) and eval-mode train accuracy (trainer.eval_train), from the data layer to
the run folder."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from conftest import load_folder, read_json, read_jsonl, regbench
from regbench.data import load_splits
from regbench.data.cifar import load_cifar10

from regbench.data.splits import held_out_size, stratified_split
from regbench.errors import UserError
from regbench.train.checkpoint import load_checkpoint

CONF = Path(__file__).resolve().parent.parent / "conf"


def dataset_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(overrides=list(overrides)).dataset


def image_keys(images: np.ndarray) -> set[bytes]:
    return {im.tobytes() for im in images}


# ---------------------------------------------------------------- the stratified helper

def test_stratified_split_keeps_class_shares_by_largest_remainder() -> None:
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    rest, a, b = stratified_split(labels, [10, 15], seed=3)
    assert np.bincount(labels[a]).tolist() == [6, 3, 1]
    # 15 × (0.6, 0.3, 0.1) = 9, 4.5, 1.5: the remainders tie, the lower class gets the extra image
    assert np.bincount(labels[b]).tolist() == [9, 5, 1]
    assert np.bincount(labels[rest]).tolist() == [45, 22, 8]
    every = np.concatenate([rest, a, b])
    assert sorted(every.tolist()) == list(range(100))  # disjoint and complete
    again = stratified_split(labels, [10, 15], seed=3)
    assert all((x == y).all() for x, y in zip(again, [rest, a, b]))  # the seed alone fixes the split
    other = stratified_split(labels, [10, 15], seed=4)
    assert not (other[1] == a).all()
    # mixed order: the first images of a part are not all of one class
    assert len(set(labels[rest[:10]].tolist())) > 1


def test_stratified_split_refuses_a_class_too_small() -> None:
    labels = np.repeat([0, 1], [5, 5])
    # each part alone fits (3 + 2), together they ask class 0 for 6 of its 5 images
    with pytest.raises(UserError, match="class 0 has 5 images"):
        stratified_split(labels, [5, 5], seed=0)


def test_val_size_counts_images_or_a_fraction() -> None:
    assert held_out_size(5000, 50_000) == 5000
    assert held_out_size(0.1, 2048) == 205
    assert held_out_size(0, 100) == 0


# ---------------------------------------------------------------- datasets

def test_cifar10_holds_out_a_stratified_val_and_tests_on_the_test_set(cifar_tarball: Path) -> None:
    raw = load_cifar10(str(cifar_tarball))
    s = load_splits(dataset_cfg("+dataset=cifar10", f"dataset.data_file={cifar_tarball}", "dataset.val_size=100"))
    assert (len(s.train), len(s.val), len(s.test)) == (400, 100, 100)
    # the official test set is the test split, untouched; val and train partition the official train set
    np.testing.assert_array_equal(s.test.images, raw.val.images)
    assert image_keys(s.val.images) | image_keys(s.train.images) == image_keys(raw.train.images)
    assert not image_keys(s.val.images) & image_keys(s.train.images)
    shares = np.bincount(raw.train.labels, minlength=10) / len(raw.train)
    assert np.abs(np.bincount(s.val.labels, minlength=10) - 100 * shares).max() < 1
    again = load_splits(dataset_cfg("+dataset=cifar10", f"dataset.data_file={cifar_tarball}", "dataset.val_size=100"))
    np.testing.assert_array_equal(again.val.images, s.val.images)
    article = load_splits(dataset_cfg("+dataset=cifar10", f"dataset.data_file={cifar_tarball}", "dataset.val_size=0"))
    assert article.test is None and len(article.train) == 500
    np.testing.assert_array_equal(article.val.images, raw.val.images)


def test_default_val_size_too_large_for_the_data_is_one_line(cifar_tarball: Path) -> None:
    with pytest.raises(UserError, match="dataset.val_size=5000 gives 5000 of 500 training images"):
        load_splits(dataset_cfg("+dataset=cifar10", f"dataset.data_file={cifar_tarball}"))


def test_synthetic_holds_out_a_tenth_by_default() -> None:
    s = load_splits(dataset_cfg("+dataset=synthetic", "dataset.train_size=200", "dataset.test_size=50"))
    assert (len(s.train), len(s.val), len(s.test)) == (180, 20, 50)
    assert np.bincount(s.val.labels).tolist() == [2] * 10


def digest(split) -> str:
    return hashlib.sha256(split.images.tobytes() + split.labels.tobytes()).hexdigest()[:16]


def test_split_seed_defaults_to_the_fixed_split_every_run_had() -> None:
    # digests of the splits made before dataset.split_seed existed (seed 7 for val_size, 5000 for mnist5k)
    synthetic = load_splits(dataset_cfg("+dataset=synthetic", "dataset.train_size=256", "dataset.test_size=64"))
    assert (digest(synthetic.train), digest(synthetic.val)) == ("7df7bb2022428818", "88a2a562a200d54d")
    # at the digits' own 28×28: the resize to 32 is Paddle's bilinear kernel, whose rounding differs from 2.6 to 3.x
    mnist5k = load_splits(dataset_cfg("+dataset=mnist5k", "dataset.image_size=28"))
    assert (digest(mnist5k.val), digest(mnist5k.test)) == ("d4e6c7c6f6ba8b57", "5ba775769b000c5e")


@pytest.mark.parametrize("dataset", ["synthetic", "cifar10", "mnist5k"])
def test_split_seed_changes_which_images_are_held_out_and_nothing_else(dataset: str, cifar_tarball: Path) -> None:
    args = {"synthetic": ["dataset.train_size=256", "dataset.test_size=64"],
            "cifar10": [f"dataset.data_file={cifar_tarball}", "dataset.val_size=100"], "mnist5k": []}[dataset]
    a = load_splits(dataset_cfg(f"+dataset={dataset}", *args))
    b = load_splits(dataset_cfg(f"+dataset={dataset}", *args, "dataset.split_seed=1"))
    assert [len(s) for s in (a.train, a.val, a.test)] == [len(s) for s in (b.train, b.val, b.test)]
    assert image_keys(a.val.images) != image_keys(b.val.images)
    assert np.bincount(a.val.labels).tolist() == np.bincount(b.val.labels).tolist()  # stratified either way
    pool = [image_keys(np.concatenate([s.train.images, s.val.images, s.test.images])) for s in (a, b)]
    assert pool[0] == pool[1]  # the same images, held out differently
    if dataset != "mnist5k":  # the test split is not carved out of train
        np.testing.assert_array_equal(a.test.images, b.test.images)


def test_mnist_val_size_is_unused_where_the_data_has_its_own_val() -> None:
    s = load_splits(dataset_cfg("+dataset=mnist5k", "dataset.val_size=100"))
    assert (len(s.train), len(s.val), len(s.test)) == (4000, 500, 500)


@pytest.fixture
def pets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "pets"
    for split, n in (("train", 10), ("test", 3)):
        for c, cls in enumerate(("cat", "dog")):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (20 * i, 100 * c, 7)).save(root / split / cls / f"{i}.png")
    return root


def test_imagefolder_carves_val_from_train_without_a_val_folder(pets: Path) -> None:
    s = load_splits(dataset_cfg("+dataset=imagefolder", f"dataset.root={pets}", "dataset.num_classes=2",
                                "dataset.image_size=8"))
    assert (len(s.train), len(s.val), len(s.test)) == (18, 2, 6)
    assert np.bincount(s.val.labels).tolist() == [1, 1]


def test_imagefolder_val_folder_is_the_val_split(pets: Path, tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        (pets / "val" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), (255, 255, 255)).save(pets / "val" / cls / "v.png")
    for attempt in ("decoded", "cached"):
        s = load_folder(str(pets), 8, 3)
        assert (len(s.train), len(s.val), len(s.test)) == (20, 2, 6), attempt
        assert (s.val.images == 255).all() and not (s.test.images == 255).all()
    assert len(list((tmp_path / "cache" / "regbench").glob("*.npz"))) == 1
    s = load_splits(dataset_cfg("+dataset=imagefolder", f"dataset.root={pets}", "dataset.num_classes=2",
                                "dataset.image_size=8"))
    assert (len(s.train), len(s.val), len(s.test)) == (20, 2, 6)  # val/ is used, nothing carved
    (pets / "val" / "cat" / "v.png").rename(pets / "val" / "bird.png")
    (pets / "val" / "cat").rmdir()
    with pytest.raises(UserError, match=r"train/ and val/ need the same class folders; only in train: \['cat'\]"):
        load_folder(str(pets), 8, 3)


def test_val_size_must_be_a_count_or_a_fraction(tmp_path: Path) -> None:
    proc = regbench("train", "dataset=synthetic", "dataset.val_size=-3", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "dataset.val_size=-3 is invalid" in proc.stderr


# ---------------------------------------------------------------- run folders

@pytest.fixture(scope="module")
def middle_best(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A held-out run (synthetic: a tenth of train is val, the test_size images the test split) with three evaluations
    whose middle one is best: the cosine schedule climbs from lr 0.01 towards eta_min 0.2, which ruins the last ten
    steps (seed and threads fixed; the tests assert this premise)."""
    run = tmp_path_factory.mktemp("heldout") / "run"
    regbench("train", "model=lenet5", "dataset=synthetic", "dataset.train_size=400", "dataset.test_size=100",
             "trainer.batch_size=40", "trainer.max_steps=30", "trainer.eval_every_steps=10", "trainer.threads=1",
             "sched=cosine", "sched.eta_min=0.2", "seed=0", f"hydra.run.dir={run}", cwd=run.parent)
    return run


def eval_json(run: Path, *args: str) -> dict:
    return json.loads(regbench("eval", str(run), *args).stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_best_checkpoint_is_the_best_evaluation_not_the_last(middle_best: Path) -> None:
    rows = read_jsonl(middle_best / "metrics.jsonl")
    summary = read_json(middle_best / "summary.json")
    val_acc = [r["val_acc"] for r in rows]
    assert [r["step"] for r in rows] == [10, 20, 30] and val_acc[1] > max(val_acc[0], val_acc[2])  # the premise
    assert (summary["best_val_acc"], summary["best_epoch"]) == (val_acc[1], rows[1]["epoch"])
    assert summary["final_val_acc"] == val_acc[2]
    best, last = (load_checkpoint(middle_best / "checkpoints" / f"{name}.npz") for name in ("best", "last"))
    assert (best[2]["step"], last[2]["step"]) == (20, 30)
    assert any(not np.array_equal(best[0][k].numpy(), last[0][k].numpy()) for k in best[0])
    # the two checkpoints scored again as a user does: each gives the val accuracy of its own evaluation
    assert eval_json(middle_best, "--split", "val")["accuracy"] == val_acc[1]
    assert eval_json(middle_best, "--split", "val", "--checkpoint", "last")["accuracy"] == val_acc[2]


@pytest.mark.slow
def test_test_acc_is_the_best_val_checkpoint_scored_on_the_test_split(middle_best: Path) -> None:
    rows = read_jsonl(middle_best / "metrics.jsonl")
    summary = read_json(middle_best / "summary.json")
    assert summary["selected_on"] == "val"
    assert summary["best_epoch"] == rows[int(np.argmax([r["val_acc"] for r in rows]))]["epoch"]
    test = eval_json(middle_best)  # the default split of a run with a distinct test split
    assert (test["split"], test["checkpoint"], test["n"]) == ("test", "best", 100)
    assert test["accuracy"] == summary["test_acc"]
    assert eval_json(middle_best, "--split", "test", "--checkpoint", "last")["accuracy"] == summary["final_test_acc"]


@pytest.mark.slow
def test_article_run_selects_on_the_test_set(tmp_path: Path, cifar_tarball: Path) -> None:
    regbench("train", "model=mynet", "dataset=cifar10", f"dataset.data_file={cifar_tarball}", "optim=adam",
             "trainer.epochs=2", "trainer.batch_size=50", "dataset.val_size=0", f"hydra.run.dir={tmp_path / 'article'}",
             cwd=tmp_path)
    article = read_json(tmp_path / "article" / "summary.json")
    assert article["steps"] == 20 and article["selected_on"] == "test"
    assert article["test_acc"] is None and article["final_test_acc"] is None  # val is the test set


@pytest.mark.slow
def test_eval_train_scores_the_training_split_in_eval_mode(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # heavy dropout: the running train-mode accuracy and the eval-mode one differ
    regbench("train", "model=lenet5", "dataset=synthetic", "dataset.train_size=100", "dataset.test_size=20",
             "reg=dropout_all", "reg.p=0.8", "trainer.epochs=2", "trainer.batch_size=30", "trainer.eval_train=true",
             f"hydra.run.dir={run}", cwd=tmp_path)
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert all(0 <= r["train_eval_acc"] <= 1 and r["train_eval_loss"] > 0 for r in rows)
    # recompute the last row's figure from the last checkpoint: the 90 training images in eval mode
    from omegaconf import OmegaConf

    from regbench.models import build_model
    from regbench.train.checkpoint import load_checkpoint

    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    model = build_model(cfg.model, cfg.act, cfg.reg)
    model.set_state_dict(load_checkpoint(run / "checkpoints" / "last.npz")[0])
    model.eval()
    train = load_splits(cfg.dataset).train
    x = (paddle.to_tensor(train.images).astype("float32") / 255 - 0.5) / 0.5
    with paddle.no_grad():
        acc = float((model(x).argmax(axis=1).numpy() == train.labels).mean())
    assert len(train) == 90 and abs(acc - rows[-1]["train_eval_acc"]) < 1e-6
    default = regbench("train", "--cfg", "job", cwd=tmp_path).stdout
    assert "eval_train: false" in default
