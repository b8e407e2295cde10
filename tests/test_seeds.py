"""Sources of variance one at a time: `seeds.init`, `seeds.order`, `seeds.augment` and `seeds.noise` beside the one
`seed` they follow by default (dataset.split_seed: tests/test_heldout.py)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import read_json, read_jsonl, regbench
from regbench.config import compose
from regbench.train.build import build_trainer
from regbench.train.checkpoint import load_checkpoint
from regbench.train.loop import Trainer

# 4 steps per epoch (115 training images once val_size holds out a tenth, batches of 32), evaluated every 3 steps;
# every stream in use: initial weights, order, crops and flips (the dataset's augment), cutmix, dropout masks
RUN = {"model": "mynet", "dataset": "synthetic", "dataset.train_size": "128", "dataset.test_size": "64",
       "trainer.batch_size": "32", "trainer.max_steps": "6", "trainer.eval_every_steps": "3",
       "reg": "[dropout,cutmix]", "sched": "constant"}
SOURCES = ("init", "order", "augment", "noise")


def args(**changes: str) -> list[str]:
    return [f"{k}={v}" for k, v in {**RUN, **{k.replace("__", "."): v for k, v in changes.items()}}.items()]


def curve(run: Path) -> list[tuple[Any, ...]]:
    return [(r["step"], r["train_loss"], r["train_acc"], r["val_loss"], r["val_acc"])
            for r in read_jsonl(run / "metrics.jsonl")]


def weights(run: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in load_checkpoint(run / "checkpoints" / "last.npz")[0].items()}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Jobs 0-5 of one sweep: seed 3 with every source left to it, every source set to 3, then each source alone
    set to 9."""
    folder = tmp_path_factory.mktemp("seeds") / "sweep"
    explicit = ",".join(f"'seeds.{s}=3'" for s in SOURCES)
    rows = ["['seed=3']", f"['seed=3',{explicit}]", *(f"['seed=3','seeds.{s}=9']" for s in SOURCES)]
    regbench("train", "-m", *args(), "hydra/sweeper=rows", f"hydra.sweeper.rows=[{','.join(rows)}]",
             f"hydra.sweep.dir={folder}")
    return folder


@pytest.mark.slow
def test_sources_left_to_seed_and_set_to_it_are_the_same_run(sweep: Path) -> None:
    # the one-seed streams of before: every figure and every weight bit for bit
    assert curve(sweep / "0") == curve(sweep / "1")
    assert read_json(sweep / "0" / "summary.json")["test_acc"] == read_json(sweep / "1" / "summary.json")["test_acc"]
    assert same(weights(sweep / "0"), weights(sweep / "1"))


@pytest.mark.slow
@pytest.mark.parametrize("job, source", [(2 + i, s) for i, s in enumerate(SOURCES)], ids=SOURCES)
def test_each_source_alone_changes_the_run(sweep: Path, job: int, source: str) -> None:
    assert f"seeds.{source}=9" in (sweep / str(job) / ".hydra" / "overrides.yaml").read_text()
    assert curve(sweep / str(job))[0][1:3] != curve(sweep / "0")[0][1:3]  # train loss and accuracy of steps 1-3
    assert not same(weights(sweep / str(job)), weights(sweep / "0"))


@pytest.mark.slow
def test_runs_differing_only_in_seeds_are_replicates_of_one_row(sweep: Path) -> None:
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert [(r["status"], r["n"]) for r in rows] == [("completed", "6")]
    assert not [column for column in rows[0] if column.startswith("seed")]


def built(tmp_path: Path, *overrides: str) -> Trainer:
    """The trainer a run with these overrides builds (model initialized, loaders ready), before any step."""
    return build_trainer(compose([*args(), *overrides]), tmp_path, on_eval=lambda progress: None)[0]


def epoch_batches(trainer: Trainer, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The epoch's training images and labels, as the trainer draws them."""
    batches = [(x.numpy(), y.numpy()) for x, y in trainer.batches(epoch)]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def test_same_init_other_order_starts_from_the_same_weights_and_draws_other_batches(tmp_path: Path) -> None:
    base = built(tmp_path, "seeds.init=5", "seeds.order=1", "seeds.augment=1")
    other_order = built(tmp_path, "seeds.init=5", "seeds.order=2", "seeds.augment=1")
    other_init = built(tmp_path, "seeds.init=6", "seeds.order=1", "seeds.augment=1")
    other_augment = built(tmp_path, "seeds.init=5", "seeds.order=1", "seeds.augment=2")
    start = {name: {k: v.numpy() for k, v in t.model.state_dict().items()}
             for name, t in (("base", base), ("order", other_order), ("init", other_init))}
    assert same(start["base"], start["order"]) and not same(start["base"], start["init"])

    images, labels = epoch_batches(base, 0)
    order_images, order_labels = epoch_batches(other_order, 0)
    assert not np.array_equal(labels, order_labels) and sorted(labels) == sorted(order_labels)
    assert not np.array_equal(images, order_images)
    # the order alone: another init draws the same batches, another augment seed the same images otherwise cropped
    init_images, init_labels = epoch_batches(other_init, 0)
    assert np.array_equal(labels, init_labels) and np.array_equal(images, init_images)
    augment_images, augment_labels = epoch_batches(other_augment, 0)
    assert np.array_equal(labels, augment_labels) and not np.array_equal(images, augment_images)
    assert not np.array_equal(epoch_batches(base, 1)[1], labels)  # every epoch its own order


@pytest.mark.slow
def test_resume_with_separate_seeds_continues_exactly(tmp_path: Path) -> None:
    seeds = dict(seeds__init="1", seeds__order="2", seeds__augment="3", seeds__noise="4")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    regbench("train", *args(**seeds), f"hydra.run.dir={straight}")
    # stopped after step 3 (mid-epoch 0), then grown to 6: through epoch 1's order
    regbench("train", *args(**seeds, trainer__max_steps="3"), f"hydra.run.dir={resumed}")
    out = regbench("train", *args(**seeds), "trainer.resume=true", f"hydra.run.dir={resumed}").stdout
    assert "resumed from" in out
    assert curve(resumed) == curve(straight) and [r[0] for r in curve(straight)] == [3, 6]
    assert same(weights(resumed), weights(straight))
