"""Optuna searches through hydra-optuna-sweeper: the worked example, failed trials, the report, missing package,
never the test split, the optimized metric."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from conftest import read_json, regbench, write_cifar100_tarball
from test_heldout import dataset_cfg

TINY = ("dataset=synthetic", "dataset.train_size=128", "dataset.test_size=64", "trainer.max_steps=4",
        "trainer.eval_every_steps=2", "hydra.sweeper.n_trials=3")


@pytest.mark.slow
def test_the_worked_example_runs_a_three_trial_study(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = regbench("train", "hparams_search=dropblock_mynet", *TINY, "hydra.sweeper.sampler.n_startup_trials=2",
                    f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    summaries = [read_json(sweep / str(n) / "summary.json") for n in range(3)]
    assert all(s["status"] == "completed" and s["model"] == "mynet" and s["reg"] == "dropblock" for s in summaries)
    configs = [(sweep / str(n) / ".hydra" / "overrides.yaml").read_text() for n in range(3)]
    assert len(set(configs)) == 3 and all("reg.dropblock.keep_prob=" in c and "optim.lr=" in c for c in configs)
    for name in ("table.md", "table.csv", "plot.png", "optimization_results.yaml"):
        assert (sweep / name).is_file(), name
    best = max(summaries, key=lambda s: s["best_val_acc"])
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("best trial:")]
    assert f"best_val_acc {best['best_val_acc']} with reg.dropblock.keep_prob=" in line


@pytest.mark.slow
def test_a_diverged_trial_is_a_failed_trial_not_zero(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # hydra/sweeper=optuna on any sweep: three learning rates, one diverges. Random sampling with seed 2 draws each
    # once (optuna 2.10); not the grid sampler, whose stop after a failed last trial crashes the sweeper (1.3.0)
    proc = regbench("train", "-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=2",
                    "hydra.sweeper.direction=maximize",
                    "model=mynet", "optim=sgd", "optim.lr=choice(0.01,0.05,1e6)", *TINY,
                    f"hydra.sweep.dir={sweep}", cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # as for any sweep with a job that did not complete
    assert "Traceback" not in out, out
    summaries = {read_json(sweep / str(n) / "summary.json")["status"]: read_json(sweep / str(n) / "summary.json")
                 for n in range(3)}
    assert sorted(summaries) == ["completed", "diverged"]
    # the sweeper told Optuna the diverged trial failed (a value of 0 would have been a completed trial)
    [failed] = [line for line in out.splitlines() if "Failed experiment" in line]
    assert f"run diverged: {summaries['diverged']['error']}" in failed
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    completed = [read_json(sweep / str(n) / "summary.json") for n in range(3)]
    assert results["best_value"] == max(s["best_val_acc"] for s in completed if s["status"] == "completed")
    assert results["best_params"]["optim.lr"] != 1e6
    assert "diverged" in (sweep / "table.md").read_text() and "best trial: best_val_acc" in proc.stdout


def test_a_search_without_the_sweeper_package_is_one_line_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "hydra_plugins" / "hydra_optuna_sweeper"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not here')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "blocked"), os.environ.get("PYTHONPATH", "")])}
    proc = regbench("train", "hparams_search=dropblock_mynet", *TINY, cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("regbench: error: Optuna searches need hydra-optuna-sweeper: "
                                   "pip install 'regbench[tune]'")


@pytest.mark.parametrize("command", [
    ("experiment=dropblock_mynet", "hparams_search=dropblock_mynet", "dataset.data_file=cifar-10-python.tar.gz"),
    ("hparams_search=dropblock_mynet", "dataset=synthetic", "dataset.val_size=0"),
    ("-m", "hydra/sweeper=optuna", "dataset=synthetic", "dataset.val_size=0", "optim.lr=interval(0.001, 0.01)"),
], ids=["article-1-setup", "synthetic", "any-optuna-sweep"])
def test_a_search_that_would_tune_on_the_test_split_is_refused(tmp_path: Path, command: tuple[str, ...]) -> None:
    proc = regbench("train", *command, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("regbench: error: a search must not tune on the test split") and "dataset.val_size=" in line
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []  # no sweep folder, nothing written


@pytest.mark.slow
def test_the_documented_search_holds_out_val_and_optimizes_the_chosen_metric(tmp_path: Path, cifar_tarball: Path) -> None:
    sweep = tmp_path / "sweep"
    # docs/configuration.md's command (article 1's setup, val held out of train), with a metric other than the default
    proc = regbench("train", "experiment=dropblock_mynet", "hparams_search=dropblock_mynet",
                    f"dataset.data_file={cifar_tarball}", "dataset.val_size=100", "trainer.max_steps=4",
                    "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2",
                    "hparams_search.optimized_metric=final_train_acc", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    summaries = [read_json(sweep / str(n) / "summary.json") for n in range(3)]
    assert all(s["status"] == "completed" and s["selected_on"] == "val" and s["test_acc"] is not None
               for s in summaries)
    best_train, best_val = (max(s[k] for s in summaries) for k in ("final_train_acc", "best_val_acc"))
    assert best_train != best_val  # else the test could not tell the metrics apart
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == best_train
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("best trial:")]
    assert line.startswith(f"best trial: final_train_acc {best_train} with ")


def test_the_config_tells_whether_val_is_the_test_set_as_the_loaded_data_does(tmp_path: Path, cifar_tarball: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import tarfile

    from PIL import Image

    from regbench.data import load_splits, val_is_test

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    trees = {}
    for name, splits in (("plain", ("train", "test")), ("with_val", ("train", "val", "test"))):
        root = trees[name] = tmp_path / name
        for split in splits:
            for c, cls in enumerate(("cat", "dog")):
                (root / split / cls).mkdir(parents=True)
                Image.new("RGB", (8, 8), (60 * c, 30, 7)).save(root / split / cls / "0.png")
        with tarfile.open(tmp_path / f"{name}.tar.gz", "w:gz") as tar:
            tar.add(root, arcname=name)
    folders = [f"dataset.root={tmp_path / name}{ext}" for name in trees for ext in ("", ".tar.gz")]
    cifar100 = write_cifar100_tarball(tmp_path / "cifar-100-python.tar.gz")
    cases = [["+dataset=synthetic", "dataset.train_size=64", "dataset.test_size=32"], ["+dataset=mnist5k"],
             ["+dataset=cifar10", f"dataset.data_file={cifar_tarball}"],
             ["+dataset=cifar100", f"dataset.data_file={cifar100}"],
             *(["+dataset=imagefolder", "dataset.num_classes=2", "dataset.image_size=8", root] for root in folders)]
    val_is_test_for = {}
    for case in cases:
        cfg = dataset_cfg(*case, "dataset.val_size=0")
        val_is_test_for[case[-1] if "imagefolder" in case[0] else case[0]] = told = val_is_test(cfg)
        assert told == (load_splits(cfg).test is None), case
        assert not val_is_test(dataset_cfg(*case, "dataset.val_size=2")), case  # val held out (or the data's own)
    assert sorted(k for k, v in val_is_test_for.items() if v) == sorted(
        ["+dataset=synthetic", "+dataset=cifar10", "+dataset=cifar100", *(f for f in folders if "plain" in f)])
