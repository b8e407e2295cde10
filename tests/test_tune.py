"""Optuna searches through hydra-optuna-sweeper: the worked example, failed trials, the report, missing package."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from conftest import read_json, regbench

TINY = ("dataset=synthetic", "dataset.train_size=128", "dataset.test_size=64", "trainer.max_steps=4",
        "trainer.eval_every_steps=2", "hydra.sweeper.n_trials=3")


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
