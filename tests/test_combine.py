"""Regularizers that combine: reg=[a,b] composition, labels, conflicts, sweeps over combinations from the CLI."""
from __future__ import annotations

import re
from pathlib import Path

import paddle.nn as nn
import pytest
from hydra.utils import get_object

from conftest import read_json, read_jsonl, regbench
from regbench.config import compose
from regbench.errors import UserError
from regbench.reg import combination
from regbench.reg.places import Places

CONF_REG = Path(__file__).resolve().parents[1] / "conf" / "reg"
REG_PACKAGE = Path(__file__).resolve().parents[1] / "regbench" / "reg"

TINY = ("model=mynet", "dataset=synthetic", "dataset.train_size=64", "dataset.test_size=32", "trainer.batch_size=32",
        "trainer.max_steps=2")


@pytest.mark.parametrize("reg, label, places", [
    ("none", "none", set()),
    ("dropout", "dropout", {"fc"}),
    ("dropblock", "dropblock", {"block"}),
    ("[dropblock,cutmix]", "dropblock+cutmix", {"block"}),
    ("[cutmix,dropblock]", "cutmix+dropblock", {"block"}),
    ("[dropout,dropout2d]", "dropout+dropout2d", {"conv", "fc"}),
    ("[droppath,dropblock,cutout,mixup]", "droppath+dropblock+cutout+mixup", {"residual", "block"}),
])
def test_options_merge_without_clobbering_each_other(reg: str, label: str, places: set[str]) -> None:
    cfg = compose([f"reg={reg}"]).reg
    assert combination.label(cfg) == label
    assert {p for p in ("conv", "fc", "block", "residual") if cfg[p] is not None} == places
    # batch transforms are keyed by name, in the order given
    expected_batch = [n for n in label.split("+") if n in ("cutout", "mixup", "cutmix")]
    assert list(cfg.batch) == expected_batch


def test_regbench_reg_mirrors_conf_reg() -> None:
    """Each conf/reg option's own factories live in regbench/reg/OPTION.py; every other module there is one the
    options share."""
    shared = {"places", "combination", "progress", "batch", "draws", "box", "mixed_targets"}
    options = {p.stem for p in CONF_REG.glob("*.yaml")} - {"_base"}
    modules = {p.stem for p in REG_PACKAGE.glob("*.py")} - {"__init__"}
    assert modules - shared <= options and not shared & options
    owned = {}
    for option in options:
        targets = re.findall(r"_target_: (\S+)", (CONF_REG / f"{option}.yaml").read_text())
        for target in targets:
            get_object(target)  # it exists
        owned[option] = {t.rsplit(".", 1)[0] for t in targets if t.startswith("regbench.")}
    assert {o: m for o, m in owned.items() if m} == {o: {f"regbench.reg.{o}"} for o in modules - shared}


def test_places_give_each_kind_its_factory_and_identity_where_empty() -> None:
    empty = Places()
    assert all(isinstance(layer, nn.Identity) for layer in
               (empty.conv(), empty.fc(), empty.block(drop_scale=1.0, site="stage"), empty.residual(drop_scale=0.5)))
    assert empty.given == [] and empty.filled == set()
    places = Places.of(compose(["reg=[dropblock,dropout]", "reg.dropblock.placement=block"]).reg)
    assert places.given == ["fc", "block"]
    assert isinstance(places.fc(), nn.Dropout) and isinstance(places.conv(), nn.Identity)
    assert isinstance(places.block(drop_scale=1.0, site="stage"), nn.Identity) and places.filled == {"fc"}
    assert places.block(drop_scale=0.25, site="block").drop_scale == 0.25 and places.filled == {"fc", "block"}


def test_a_single_option_composes_as_before() -> None:
    cfg = compose(["model=mynet", "reg=dropblock", "dataset=cifar10"])
    assert cfg.hydra.runtime.choices.reg == "dropblock"
    assert cfg.reg.block._target_.endswith("placed_dropblock") and cfg.reg.conv is None and cfg.reg.fc is None
    assert compose(["reg=dropout", "reg.p=0.3"]).reg.fc.p == 0.3


@pytest.mark.parametrize("reg, place", [
    ("[dropout2d,dropout_all]", "conv"), ("[dropout,dropout_all]", "fc"), ("[mixup,cutmix]", "targets"),
])
def test_two_options_filling_one_place_are_refused(reg: str, place: str) -> None:
    with pytest.raises(UserError, match=f"both fill the {place} place"):
        compose([f"reg={reg}"])


def test_conflict_and_unknown_option_in_a_list_are_one_line_exit_2_nothing_written(tmp_path: Path) -> None:
    for reg, message in (("[dropout2d,dropout_all]", "reg options dropout2d and dropout_all both fill the conv place"),
                         ("[dropblock,cutmixx]", "unknown reg 'cutmixx'")):
        proc = regbench("train", f"reg={reg}", *TINY, cwd=tmp_path, check=False)
        assert proc.returncode == 2
        assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert not (tmp_path / "outputs").exists()


def test_a_conflict_in_any_value_of_a_sweep_stops_it_before_the_first_job(tmp_path: Path) -> None:
    proc = regbench("train", "-m", "reg=dropout,[dropout2d,dropout_all]", *TINY, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "reg options dropout2d and dropout_all both fill the conv place" in proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("sweep", ["none,dropblock,cutmix,[dropblock,cutmix]",
                                   "[none],[dropblock],[cutmix],[dropblock,cutmix]"])
@pytest.mark.slow
def test_a_sweep_over_combinations_runs_every_value_and_labels_its_rows(tmp_path: Path, sweep: str) -> None:
    folder = tmp_path / "sweep"
    proc = regbench("train", "-m", f"reg={sweep}", *TINY, f"hydra.sweep.dir={folder}", cwd=tmp_path)
    labels = ["none", "dropblock", "cutmix", "dropblock+cutmix"]
    summaries = [read_json(folder / str(i) / "summary.json") for i in range(4)]
    assert [s["reg"] for s in summaries] == labels
    assert all(s["status"] == "completed" and s["steps"] == 2 for s in summaries)
    rows = [line for line in (folder / "table.md").read_text().splitlines() if line.startswith("| ") and
            line.split("|")[1].strip() in labels]
    assert sorted(line.split("|")[1].strip() for line in rows) == sorted(labels)
    assert "dropblock+cutmix" in proc.stdout


@pytest.mark.parametrize("reg, model", [("droppath", "resnet18_nndl"), ("cutout", "mynet"), ("mixup", "mynet"),
                                        ("cutmix", "mynet")])
@pytest.mark.slow
def test_resume_after_max_steps_equals_an_uninterrupted_run(tmp_path: Path, reg: str, model: str) -> None:
    """Every draw comes from (seed, step): stopping at step 4 and resuming changes nothing."""
    # a constant lr: cutting a run with max_steps makes a cosine annealing end sooner
    common = (f"model={model}", f"reg={reg}", "dataset=synthetic", "dataset.train_size=128", "dataset.test_size=32",
              "trainer.epochs=2", "trainer.batch_size=32", "trainer.eval_every_steps=4", "sched=constant",
              "reg.cutmix.prob=0.7")
    common = tuple(o for o in common if not o.startswith("reg.cutmix") or "cutmix" in reg)
    regbench("train", *common, f"hydra.run.dir={tmp_path / 'full'}", cwd=tmp_path)
    regbench("train", *common, "trainer.max_steps=4", f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path)
    regbench("train", *common, "trainer.resume=true", f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path)
    full, resumed = (read_jsonl(tmp_path / run / "metrics.jsonl") for run in ("full", "cut"))
    keys = ("step", "train_loss", "train_acc", "val_loss", "val_acc")
    assert [r["step"] for r in resumed] == [4, 8]
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in full]
    mixed = {r.get("train_targets") for r in full}
    assert mixed == ({"mixed"} if "mix" in reg else {None})


@pytest.mark.parametrize("override, message", [
    ("reg=droppath reg.droppath.rate=1.0", "reg.droppath.rate=1.0 is invalid: it must be in [0, 1)"),
    ("reg=droppath reg.droppath.rate=-0.1", "reg.droppath.rate=-0.1 is invalid"),
    ("reg=mixup reg.mixup.alpha=0", "reg.mixup.alpha=0 is invalid: it must be > 0"),
    ("reg=cutmix reg.cutmix.alpha=-1", "reg.cutmix.alpha=-1 is invalid: it must be > 0"),
    ("reg=cutmix reg.cutmix.prob=1.5", "reg.cutmix.prob=1.5 is invalid: it must be in [0, 1]"),
    ("reg=cutout reg.cutout.size=0", "reg.cutout.size=0 is invalid"),
    ("reg=[dropblock,cutout] reg.cutout.size=40", "reg.cutout.size=40 is larger than the 32×32 images"),
    ("reg=cutout dataset.image_size=12", "reg.cutout.size=16 is larger than the 12×12 images"),
])
def test_bad_reg_setting_is_one_line_exit_2_nothing_written(tmp_path: Path, override: str, message: str) -> None:
    proc = regbench("train", *override.split(), "dataset=synthetic", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()
