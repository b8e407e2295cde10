"""`regbench reproduce`: each article's file -> one multirun of its rows × seeds, each run matched to its row and
budget in the table; one real end to end."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import SHARED_DATA, read_json, regbench, run_folders
from regbench.articles import article_names, load_article
from regbench.report.runs import load_run
from regbench.report.matching import budget_of, match_row
from regbench.reproduce import launcher, sweep_overrides

BUDGETS = [(name, budget) for name in article_names() for budget in load_article(name).budgets]
# what the user must add for an article's runs to compose: the location of data that has no default (an image folder)
DATA = {"dropblock_imagenet": ["dataset.root=DIR"], "dyrelu_imagenet": ["dataset.root=DIR"]}


@pytest.mark.parametrize(("name", "budget"), BUDGETS)
@pytest.mark.slow
def test_every_row_runs_once_per_seed_and_its_runs_match_row_and_budget(tmp_path: Path, name: str,
                                                                         budget: str) -> None:
    article = load_article(name)
    folders = run_folders(tmp_path, sweep_overrides(name, budget, DATA.get(name, [])))
    seeds = article.budgets[budget].seeds
    rows = [(part, i) for part in article.parts() for i in range(len(part.rows))]  # each table's rows, in order
    assert len(folders) == len(rows) * len(seeds)
    for i, folder in enumerate(folders):
        run = load_run(folder)
        part, row = rows[i // len(seeds)]
        assert match_row(part, run) == row, run.overrides  # the file's rows in order, every seed
        assert run.config.seed == seeds[i % len(seeds)]
        assert budget_of(part, run) == (budget if article.budgets[budget].overrides else "full")


def test_the_honest_variant_is_no_budget_of_the_article(tmp_path: Path) -> None:
    """dataset.val_size=5000 selects on held-out images: the table keeps the row's label, not the article's numbers."""
    run = load_run(run_folders(tmp_path, sweep_overrides("dropblock", "full", ["dataset.val_size=5000"]))[0])
    assert run.config.dataset.val_size == 5000
    assert match_row(load_article("dropblock"), run) == 0 and budget_of(load_article("dropblock"), run) is None


def test_dyrelu_grid_has_both_dyrelu_c_rows(tmp_path: Path) -> None:
    folders = run_folders(tmp_path, sweep_overrides("dyrelu", "quick", []))
    softmax = [OmegaConf.select(load_run(folder).config, "act.attention_softmax") for folder in folders]
    assert softmax == [None, None, None, "width", "positions"]


def test_unknown_article_or_budget_is_one_line(tmp_path: Path) -> None:
    proc = regbench("reproduce", "resnet", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "choose from" in proc.stderr and "Traceback" not in proc.stderr
    proc = regbench("reproduce", "nndl", "--budget", "huge", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "regbench: error: article nndl has no budget 'huge'; choose one of: full, quick" \
        in proc.stderr
    # a row that cannot compose with the user's overrides stops everything before any job
    proc = regbench("reproduce", "dyrelu", "act.temperature=2", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "unknown option 'act.temperature'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist (real MNIST IDX files)")
@pytest.mark.slow
def test_reproduce_quick_end_to_end_writes_table_and_plot(tmp_path: Path) -> None:
    regbench("reproduce", "nndl", "--budget", "quick", f"dataset.data_dir={SHARED_DATA / 'mnist'}",
             "trainer.epochs=1", "dataset.limit.train=320", cwd=tmp_path)
    sweeps = list((tmp_path / "outputs" / "reproduce" / "nndl-quick").iterdir())
    assert len(sweeps) == 1
    sweep = sweeps[0]
    folders = sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    assert [read_json(p / "summary.json")["status"] for p in folders] == ["completed"] * 3
    assert [read_json(p / "summary.json")["model"] for p in folders] == ["lenet5_nndl", "resnet18_nndl",
                                                                          "resnet18_nndl"]
    table = (sweep / "table.md").read_text()
    for label in ("LeNet-5 †", "ResNet18 without residual †", "ResNet18 with residual †"):
        assert label in table
    # fewer epochs and images than the article: labelled with its rows, but its numbers are not set beside
    assert "† not the article's setup (dataset.limit.train, trainer.epochs changed)" in table
    assert "| Δ vs ResNet18 without residual | 95% CI | p |" in table and "| baseline |" in table
    assert "no test acc difference can be tested (n/a)" in table  # one seed per row
    assert (sweep / "table.csv").read_text().count("\n") >= 4
    assert (sweep / "plot.png").stat().st_size > 10_000


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: the grid runs one job at a time")
def test_on_a_cpu_the_grid_runs_one_job_per_core_unless_the_command_line_chooses() -> None:
    overrides, how = launcher([])
    assert overrides == ["hydra/launcher=joblib"]
    assert f"{len(os.sched_getaffinity(0))} runs at once (one per core), one thread each" in how
    assert launcher(["hydra/launcher=basic"]) == ([], "hydra/launcher=basic, as the command line chose")
    overrides, how = launcher(["trainer.device=cpu"])
    assert overrides == [] and how.startswith("Hydra's basic launcher: one run at a time")
