"""Runs made by an older regbench, before keys such as `seeds.*` existed: read with each missing key back-filled at its
default (regbench.saved_config), they pair in tables with new runs of the same `seed`, resume, and are scored by eval,
while a resume that changes a setting is still refused."""
from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path

import pytest
import yaml
from hydra.utils import get_object
from scipy import stats

from conftest import read_json, read_jsonl, regbench, run_folders
from regbench.report.pairing import seeds_of
from regbench.report.runs import load_run
from regbench.saved_config import read_saved_config

# the keys a default run (LeNet-5 on mnist5k) has today and had not before `seeds.*` came (conf/ of e94b0db^ composed)
ADDED_SINCE = ("seeds", "dataset.split_seed", "dataset.load.split_seed", "trainer.data_on_device",
               "trainer.data_on_device_mb", "trainer.num_workers")
# LeNet-5 on 256 of the offline MNIST digits, 2 steps; scored on 100 test digits
RUN = ("trainer.batch_size=32", "trainer.max_steps=2", "dataset.limit.train=256", "dataset.limit.test=100")


def make_old(run: Path) -> None:
    """Rewrite the run's .hydra/config.yaml as the release before `seeds.*` wrote it: without the keys added since."""
    path = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for key in ADDED_SINCE:
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        del node[leaf]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    # no override of that release could name them (hydra.yaml's hydra.overrides.task is the same list)
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert not [o for o in overrides if o.split("=")[0].startswith(ADDED_SINCE)]


def test_a_run_made_before_seeds_existed_reads_them_as_its_own_seed(tmp_path: Path) -> None:
    old, new = run_folders(tmp_path, ["-m", "reg=none,dropout", "seed=3", *RUN])  # 3: no key's fixed default
    make_old(old)
    config = read_saved_config(old)
    assert [config.seeds[k] for k in ("init", "order", "augment", "noise")] == [3, 3, 3, 3]
    assert (config.dataset.split_seed, config.dataset.load.split_seed) == (5000, 5000)  # mnist5k's, as before
    assert config.trainer.batch_size == 32 and config.dataset.limit.train == 256  # what the run saved stays
    assert seeds_of(load_run(old)) == seeds_of(load_run(new)) == ("5000", "3", "3", "3", "3", "3")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Jobs 0-3: reg=none and reg=dropout, seeds 0 and 1; reg=none's two runs (0 and 1) rewritten as old runs."""
    folder = tmp_path_factory.mktemp("old") / "sweep"
    regbench("train", "-m", "reg=none,dropout", "seed=0,1", *RUN, f"hydra.sweep.dir={folder}")
    for job in ("0", "1"):
        assert read_json(folder / job / "summary.json")["reg"] == "none"
        make_old(folder / job)
    return folder


@pytest.mark.slow
def test_old_runs_pair_with_new_runs_of_the_same_seed(sweep: Path) -> None:
    out = regbench("table", str(sweep), "--metric", "test_nll").stdout
    print(next(line for line in out.splitlines() if line.startswith("| dropout")))
    dropout = next(r for r in csv.DictReader((sweep / "table.csv").open()) if r["reg"] == "dropout")
    assert (dropout["test"], dropout["pairs"]) == ("paired", "2") and "(paired t-test)" in out
    # the paired t-test of dropout − none, seed by seed, written out from the runs' summaries
    nll = {(s["reg"], s["seed"]): s["test_nll"] for s in (read_json(sweep / j / "summary.json") for j in "0123")}
    diffs = [nll["dropout", seed] - nll["none", seed] for seed in (0, 1)]
    half = stats.t.ppf(0.975, 1) * statistics.stdev(diffs) / 2 ** 0.5
    mean = statistics.fmean(diffs)
    assert float(dropout["delta"]) == pytest.approx(mean, rel=1e-9)
    assert [float(dropout["ci_low"]), float(dropout["ci_high"])] == pytest.approx([mean - half, mean + half], rel=1e-9)
    assert float(dropout["p"]) == pytest.approx(stats.ttest_rel(diffs, [0.0, 0.0]).pvalue, rel=1e-9)


@pytest.mark.slow
def test_an_old_run_resumes_with_more_steps(sweep: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(sweep / "0", run)
    out = regbench("train", "reg=none", "seed=0", *RUN, "trainer.max_steps=4", "trainer.resume=true",
                   f"hydra.run.dir={run}").stdout
    assert "resumed from" in out and "at step 2" in out
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [2, 4]
    summary = read_json(run / "summary.json")
    assert (summary["status"], summary["steps"]) == ("completed", 4)


@pytest.mark.slow
@pytest.mark.parametrize("change, named", [
    ("seed=1", "seed 0 → 1."),
    ("seeds.order=1", "seeds.order 0 → 1."),  # back-filled as the run's seed
    # back-filled as mnist5k's default
    ("dataset.split_seed=8", "dataset.split_seed 5000 → 8; dataset.load.split_seed 5000 → 8."),
], ids=["seed", "seeds.order", "split_seed"])
def test_an_old_run_resumed_with_another_setting_is_refused(sweep: Path, tmp_path: Path, change: str,
                                                            named: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(sweep / "0", run)
    proc = regbench("train", "reg=none", "seed=0", *RUN, change, "trainer.max_steps=4", "trainer.resume=true",
                    f"hydra.run.dir={run}", check=False)
    assert proc.returncode == 2 and f"trainer.resume=true, but {run} holds another run: {named}" in proc.stderr


@pytest.mark.slow
def test_an_old_run_is_scored_as_its_trainer_did(sweep: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(sweep / "0", run)
    scored = json.loads(regbench("eval", str(run), "--split", "test").stdout.strip().splitlines()[-1])
    summary = read_json(run / "summary.json")
    assert scored["accuracy"] == summary["test_acc"]
    assert scored["nll"] == pytest.approx(summary["test_nll"], abs=1e-6)


# -- runs saved before the regularizers moved into regbench/reg/ -----------------------------------------------------

# where the release before regbench/reg/ kept each regularizer its conf/reg/ options name
OLD_TARGETS = {"dropblock": "regbench.layers.dropblock.placed_dropblock", "cutmix": "regbench.batchreg.mix.CutMix",
               "mixup": "regbench.batchreg.mix.Mixup", "cutout": "regbench.batchreg.cutout.Cutout",
               "droppath": "regbench.layers.droppath.DropPath"}
MOVED_RUN = ("model=mynet", "dataset=synthetic", "dataset.train_size=128", "dataset.test_size=64",
             "trainer.batch_size=32", "trainer.max_steps=2")


def name_old_targets(run: Path) -> None:
    """Rewrite the run's .hydra/config.yaml as the release before regbench/reg/ wrote it: old `_target_` paths."""
    path = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for name, target in OLD_TARGETS.items():
        if name in config["reg"]:
            config["reg"][name]["_target_"] = target
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_a_run_saved_before_the_regularizers_moved_names_where_they_are_now(tmp_path: Path) -> None:
    runs = run_folders(tmp_path, ["-m", "reg=[dropblock,cutmix],[cutout,mixup,droppath]", *MOVED_RUN])
    for run, options in zip(runs, (["dropblock", "cutmix"], ["cutout", "mixup", "droppath"])):
        name_old_targets(run)
        config = read_saved_config(run)
        targets = {name: config.reg[name]._target_ for name in OLD_TARGETS if name in config.reg}
        assert targets == {name: f"regbench.reg.{name}.{target.rsplit('.', 1)[1]}" for name, target in
                           OLD_TARGETS.items() if name in config.reg}
        assert all(get_object(target) for target in targets.values())
        assert list(config.reg.owns) == options  # back-filled from these options, not from reg's default (none)


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of reg=[dropblock,cutmix] whose saved config names the regularizers' old `_target_` paths."""
    run = tmp_path_factory.mktemp("moved") / "run"
    regbench("train", "reg=[dropblock,cutmix]", "seed=0", *MOVED_RUN, f"hydra.run.dir={run}")
    name_old_targets(run)
    return run


@pytest.mark.slow
def test_a_run_saved_before_the_regularizers_moved_is_scored_and_resumed(moved: Path, tmp_path: Path) -> None:
    scored = json.loads(regbench("eval", str(moved), "--split", "test").stdout.strip().splitlines()[-1])
    summary = read_json(moved / "summary.json")
    assert scored["accuracy"] == summary["test_acc"]
    run = tmp_path / "run"
    shutil.copytree(moved, run)
    out = regbench("train", "reg=[dropblock,cutmix]", "seed=0", *MOVED_RUN, "trainer.max_steps=4",
                   "trainer.resume=true", f"hydra.run.dir={run}").stdout
    assert "resumed from" in out and "at step 2" in out
    assert (read_json(run / "summary.json")["status"], read_json(run / "summary.json")["steps"]) == ("completed", 4)
