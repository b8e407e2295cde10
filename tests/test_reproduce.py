"""`regbench reproduce`: each article's grid as one multirun, its rows matched in the table; one real end to end."""
from __future__ import annotations

import itertools
from pathlib import Path

import hydra
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from conftest import SHARED_DATA, read_json, regbench
from regbench.config import CONF_DIR
from regbench.report.runs import load_run
from regbench.report.table import load_articles, match_row, off_grid
from regbench.reproduce import ARTICLES, sweep_overrides


def expand(overrides: list[str]) -> list[list[str]]:
    """The jobs of a basic-sweeper multirun: the cartesian product of every swept override's values."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
            else [text] for o, text in zip(parsed, overrides)]
    return [list(job) for job in itertools.product(*axes)]


@pytest.mark.parametrize("article", list(ARTICLES))
@pytest.mark.parametrize("budget", ["full", "quick"])
def test_grid_runs_every_article_row_once_per_seed(tmp_path: Path, article: str, budget: str) -> None:
    args = sweep_overrides(article, budget, [])
    assert args[0] == "-m"
    overrides = [a for a in args[1:] if not a.startswith("hydra.")]
    spec = load_articles()[ARTICLES[article]]
    jobs = expand(overrides)
    assert len(jobs) == len(spec["rows"]) * len(spec["budgets"][budget]["seeds"])
    matched = []
    for i, job in enumerate(jobs):
        with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra.compose("config", overrides=job, return_hydra_config=True)
        folder = tmp_path / str(i) / ".hydra"
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])))
        (folder / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, "hydra")))
        (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(job)))
        run = load_run(folder.parent)
        matched.append(match_row(spec, run))
        # the full budget is the article's own setup; the quick one is marked as not the article's
        assert bool(off_grid(spec, run)) == (budget == "quick" and bool(spec["budgets"]["quick"].get("overrides")))
    assert sorted(set(matched)) == list(range(len(spec["rows"])))


def test_unknown_article_is_one_line(tmp_path: Path) -> None:
    proc = regbench("reproduce", "resnet", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "choose from" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist (real MNIST IDX files)")
def test_reproduce_quick_end_to_end_writes_table_and_plot(tmp_path: Path) -> None:
    regbench("reproduce", "nndl", "--budget", "quick", f"dataset.data_dir={SHARED_DATA / 'mnist'}",
             "trainer.epochs=1", "dataset.limit.train=320", cwd=tmp_path)
    sweeps = list((tmp_path / "outputs" / "reproduce" / "nndl-quick").iterdir())
    assert len(sweeps) == 1
    sweep = sweeps[0]
    statuses = [read_json(p / "summary.json")["status"] for p in sorted(sweep.iterdir()) if p.is_dir() and p.name.isdigit()]
    assert statuses == ["completed"] * 3
    table = (sweep / "table.md").read_text()
    for label in ("LeNet-5", "ResNet18 without residual", "ResNet18 with residual"):
        assert label in table
    # fewer epochs and images than the article: labelled with its rows, but its numbers are not set beside
    assert "† not the article's setup (dataset.limit.train, trainer.epochs changed)" in table
    assert (sweep / "table.csv").read_text().count("\n") >= 4
    assert (sweep / "plot.png").stat().st_size > 10_000
