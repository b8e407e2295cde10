"""Sweeps on Hydra's launchers: joblib (parallel processes) and submitit (the path SLURM uses), same results."""
from __future__ import annotations

from pathlib import Path

import pytest

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
def test_launcher_gives_the_basic_launchers_results_and_table(tmp_path: Path, basic: Path, launcher: tuple) -> None:
    sweep = tmp_path / "sweep"
    regbench(*SWEEP, *launcher, f"hydra.sweep.dir={sweep}")
    assert results(sweep) == results(basic)
    assert [r[1] for r in results(sweep)] == ["completed", "completed"]
    assert table_rows(sweep) == table_rows(basic)
    assert (sweep / "plot.png").stat().st_size > 0


def test_slurm_launcher_config_composes(tmp_path: Path) -> None:
    out = regbench("train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra",
                   cwd=tmp_path).stdout
    assert "SlurmLauncher" in out and "partition: gpu" in out and "gpus_per_node: 1" in out
