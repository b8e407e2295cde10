"""Sweeps on Hydra's launchers: joblib (parallel processes) and submitit (the path SLURM uses), same results."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import read_json, regbench

SWEEP = ("train", "-m", "model=mynet", "dataset=synthetic", "dataset.train_size=128", "dataset.test_size=64",
         "trainer.batch_size=32", "trainer.max_steps=6", "seed=0,1")


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep = tmp_path_factory.mktemp("basic") / "sweep"
    regbench(*SWEEP, f"hydra.sweep.dir={sweep}")
    return sweep


def results(sweep: Path) -> list[tuple]:
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [tuple(read_json(j / "summary.json")[k] for k in ("seed", "status", "final_val_acc", "best_val_acc"))
            for j in jobs]


def table_rows(sweep: Path) -> list[str]:
    return [line for line in (sweep / "table.md").read_text().splitlines() if line.startswith("|")]


@pytest.mark.parametrize("launcher", [
    ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
    ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"),
])
@pytest.mark.slow
def test_launcher_gives_the_basic_launchers_results_and_table(tmp_path: Path, basic: Path, launcher: tuple) -> None:
    sweep = tmp_path / "sweep"
    regbench(*SWEEP, *launcher, f"hydra.sweep.dir={sweep}")
    assert results(sweep) == results(basic)
    assert [r[1] for r in results(sweep)] == ["completed", "completed"]
    assert table_rows(sweep) == table_rows(basic)
    assert (sweep / "plot.png").stat().st_size > 0


@pytest.mark.slow
def test_slurm_launcher_config_composes(tmp_path: Path) -> None:
    out = regbench("train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra",
                   cwd=tmp_path).stdout
    assert "SlurmLauncher" in out and "partition: gpu" in out and "gpus_per_node: 1" in out


@pytest.mark.slow
def test_rows_sweeper_runs_each_row_with_every_seed_on_joblib(tmp_path: Path) -> None:
    """Rows that set several keys at once, × seeds, in parallel processes; the table compares them with reg=none.
    A row's escaped interpolation reaches each job as written (as `regbench reproduce` passes the league's data files)."""
    sweep = tmp_path / "sweep"
    regbench("train", "-m", "hydra/sweeper=rows", "hydra.sweeper.rows=[['reg=none'],"
             r"['reg=dropblock','reg.dropblock.block_size=3','reg.dropblock.keep_prob=\${oc.select:keep,0.8}']]",
             "seed=0,1",
             "model=mynet", "dataset=synthetic", "dataset.train_size=128", "dataset.test_size=64",
             "trainer.batch_size=32", "trainer.max_steps=4", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
             f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    summaries = [read_json(j / "summary.json") for j in jobs]
    assert [(s["reg"], s["seed"], s["status"]) for s in summaries] == [
        ("none", 0, "completed"), ("none", 1, "completed"), ("dropblock", 0, "completed"), ("dropblock", 1, "completed")]
    config = (jobs[3] / ".hydra" / "config.yaml").read_text()
    assert "block_size: 3" in config and "keep_prob: ${oc.select:keep,0.8}" in config
    assert "reg.dropblock.keep_prob=${oc.select:keep,0.8}" in (jobs[3] / ".hydra" / "overrides.yaml").read_text()
    assert OmegaConf.load(jobs[3] / ".hydra" / "config.yaml").reg.dropblock.keep_prob == 0.8  # resolved in the job
    table = (sweep / "table.md").read_text()
    assert "| Δ vs reg=none | 95% CI | p |" in table and "| baseline |" in table
    assert "With n=2 runs per row only large effects are detectable" in table
