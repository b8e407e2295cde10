"""One definition of a run's identity: every trainer key decided, and data moved to another folder is the same run
for the resume check, the completed-job skip and the table."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

import yaml
from PIL import Image

from conftest import read_json, read_jsonl, regbench
from regbench.identity import REPLICATES, TRAINER, Kind, kind, separates_rows

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_every_trainer_key_is_decided_and_dataset_paths_are_locations() -> None:
    for path in (CONF / "trainer").glob("*.yaml"):
        assert set(yaml.safe_load(path.read_text())) == set(TRAINER), path.name
    paths = {f"dataset.{k}" for p in (CONF / "dataset").glob("*.yaml") for k in yaml.safe_load(p.read_text())
             if k in ("root", "data_file", "data_dir")}
    assert paths == {"dataset.root", "dataset.data_file", "dataset.data_dir"}
    assert {kind(k) for k in paths} == {Kind.LOCATION}


R, LOC, LEN, O = Kind.RESULT, Kind.LOCATION, Kind.LENGTH, Kind.OTHER
# the kind of every trainer key and every top-level key, decided here by hand: a RESULT key taken for another kind
# would resume or skip a run across a changed setting, the reverse asks for a new folder
EXPECTED = {
    "trainer.epochs": LEN, "trainer.max_steps": LEN,
    "trainer.batch_size": R, "trainer.drop_last": R, "trainer.label_smoothing": R, "trainer.amp": R, "trainer.tf32": R,
    "trainer.sync_bn": R, "trainer.eval_every": R, "trainer.eval_every_steps": R,
    "trainer.eval_train": O, "trainer.eval_batch_size": O, "trainer.device": O, "trainer.compile": O,
    "trainer.cudnn_benchmark": O, "trainer.deterministic": O, "trainer.cudnn_workspace_mb": O, "trainer.threads": O,
    "trainer.auto_threads_max": O, "trainer.fast_conv_bias": O, "trainer.mkl_amd_avx2": O, "trainer.resume": O,
    "trainer.log_every": O, "trainer.stop_check_s": O, "trainer.data_on_device": O, "trainer.data_on_device_mb": O, "trainer.num_workers": O,
    "trainer.a_key_regbench_does_not_know": R,
    "seed": R, "seeds.init": R, "seeds.order": R, "seeds.augment": R, "seeds.noise": R,
    "model": R, "model.width": R, "act": R, "reg": R, "reg.p": R, "optim.lr": R, "sched": R, "experiment": R,
    "dataset": R, "dataset.split_seed": R, "dataset.val_size": R, "dataset.augment": R,
    "dataset.data_file": LOC, "dataset.root": LOC, "dataset.data_dir": LOC, "dataset.load.data_file": LOC,
    "data_files.cifar10": LOC,
    "logger": O, "hparams_search": O, "hparams_search.optimized_metric": O, "hydra.run.dir": O, "hydra/launcher": O,
}


def test_every_key_is_of_the_kind_written_out_here() -> None:
    trainer_keys = {f"trainer.{k}" for k in yaml.safe_load((CONF / "trainer" / "default.yaml").read_text())}
    config = yaml.safe_load((CONF / "config.yaml").read_text())
    groups = {str(next(iter(g)) if isinstance(g, dict) else g).split("/")[0] for g in config.pop("defaults")}
    assert trainer_keys <= set(EXPECTED)
    assert set(config) | groups - {"_self_"} <= {k.split(".")[0].split("/")[0] for k in EXPECTED}
    assert {k: kind(k) for k in EXPECTED} == EXPECTED

def test_every_seed_is_a_result_and_a_replicate() -> None:
    seeds = {"seed", *(f"seeds.{k}" for k in yaml.safe_load((CONF / "config.yaml").read_text())["seeds"]),
             *(f"dataset.{k}" for p in (CONF / "dataset").glob("*.yaml") for k in yaml.safe_load(p.read_text())
               if k.endswith("seed"))}
    assert seeds == REPLICATES
    assert {kind(k) for k in seeds} == {Kind.RESULT} and not any(separates_rows(k) for k in seeds)


def image_folder(root: Path) -> Path:
    """Two classes of coloured squares with noise: train/ and test/, 10 and 4 images a class."""
    import numpy as np

    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 4)):
        for label, colour in enumerate(((200, 40, 40), (40, 40, 200))):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(colour) + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.mark.slow
def test_data_moved_to_another_folder_resumes_skips_and_groups_into_one_row(tmp_path: Path) -> None:
    here = image_folder(tmp_path / "here")
    there = tmp_path / "there"
    shutil.copytree(here, there)
    sweep = tmp_path / "sweep"

    def train(job: str, root: Path, *extra: str) -> str:
        return regbench("train", "model=mynet", "dataset=imagefolder", "dataset.num_classes=2", f"dataset.root={root}",
                        "trainer.batch_size=6", "trainer.eval_every_steps=2", *extra, f"hydra.run.dir={sweep / job}",
                        env={"XDG_CACHE_HOME": str(tmp_path / "cache")}).stdout

    train("0", here, "trainer.max_steps=2")
    assert "resumed from" in train("0", there, "trainer.max_steps=4", "trainer.resume=true")
    assert [r["step"] for r in read_jsonl(sweep / "0" / "metrics.jsonl")] == [2, 4]
    assert read_json(sweep / "0" / "summary.json")["status"] == "completed"
    assert "already completed" in train("0", here, "trainer.max_steps=4", "trainer.resume=true")
    train("1", there, "trainer.max_steps=4", "seed=1")
    assert f"dataset.root={here}" in (sweep / "0" / ".hydra" / "overrides.yaml").read_text()
    assert f"dataset.root={there}" in (sweep / "1" / ".hydra" / "overrides.yaml").read_text()
    regbench("table", str(sweep))
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert [(r["status"], r["n"]) for r in rows] == [("completed", "2")]  # the two seeds of one setup
    assert "dataset.root" not in rows[0]
