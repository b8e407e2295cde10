"""Every job of a sweep is composed and checked before the first one starts, as Hydra itself would compose it."""
from __future__ import annotations

import itertools
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from conftest import regbench
from regbench.config import CONF_DIR, check_group_choices, parse_overrides
from regbench.errors import UserError
from regbench.preflight import command_jobs

SMALL = ("dataset=synthetic", "dataset.train_size=64", "dataset.test_size=32", "trainer.batch_size=32",
         "trainer.max_steps=1")


@pytest.mark.parametrize("launcher", [(), ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")],
                         ids=["basic", "joblib"])
@pytest.mark.parametrize("sweep, message", [
    (("model=mynet", "optim.lr=0.1,0"), "optim.lr=0 is invalid: it must be > 0"),
    (("model=mynet", "seed=range(0,2)", "trainer.eval_every=1,0"), "trainer.eval_every=0 is invalid"),
    (("model=mynet,lenet5", "dataset.image_size=28"), "model lenet5 needs image_size >= 32 (got 28)"),
    (("model=mynet", "reg=dropout", "reg.p=0.5,1.5"), "reg.p=1.5 is invalid: it must be in [0, 1)"),
], ids=["lr", "range", "model-fit", "reg.p"])
@pytest.mark.slow
def test_a_bad_value_in_any_job_stops_the_sweep_before_anything_is_written(
        tmp_path: Path, launcher: tuple, sweep: tuple, message: str) -> None:
    proc = regbench("train", "-m", *SMALL, *sweep, *launcher, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no outputs/ folder, no multirun.yaml


def test_a_sweep_without_m_is_one_line(tmp_path: Path) -> None:
    proc = regbench("train", "seed=0,1", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "seed=0,1 gives several values: add -m" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "outputs").exists()


def expand(overrides: list[str]) -> list[list[str]]:
    """The jobs of a basic-sweeper multirun, by hand: the product of every swept override's values, in order."""
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
            else [o.input_line] for o in parse_overrides(overrides)]
    return [list(job) for job in itertools.product(*axes)]


@pytest.mark.slow
def test_every_job_is_the_config_hydra_composes_for_it() -> None:
    overrides = ["model=mynet,lenet5", "reg=none,dropblock", "optim.lr=0.1,0.01", "+trainer.note=x",
                 "seed=range(3,5)", "trainer.epochs=2", "hydra.sweep.dir=sweep"]
    jobs = command_jobs(["-m", *overrides])
    expected = expand([o for o in overrides if not o.startswith("hydra.")])
    assert [j.num for j in jobs] == list(range(16)) and [j.overrides[1:] for j in jobs] == expected
    for job, job_overrides in zip(jobs, expected):
        with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra.compose("config", overrides=["hydra.sweep.dir=sweep", *job_overrides],
                                return_hydra_config=True)
        ours = OmegaConf.to_container(job.cfg, resolve=False)
        theirs = OmegaConf.to_container(cfg, resolve=False)
        for node in (ours, theirs):
            del node["hydra"]["job"]["num"], node["hydra"]["job"]["id"], node["hydra"]["runtime"]["output_dir"]
        assert ours == theirs
        assert job.folder == Path("sweep") / str(job.num)


def test_an_experiments_rows_expand_as_the_rows_sweeper_does() -> None:
    jobs = command_jobs(["-m", "experiment=dropblock_mynet", "hydra/sweeper=rows",
                         "hydra.sweeper.rows=[['reg=none'],['reg=dropblock','reg.dropblock.seed_region=valid']]",
                         "seed=0,1"])
    assert [(j.cfg.seed, j.cfg.hydra.runtime.choices.reg, j.cfg.model._target_) for j in jobs] == [
        (0, "none", "regbench.models.mynet.MyNet"), (1, "none", "regbench.models.mynet.MyNet"),
        (0, "dropblock", "regbench.models.mynet.MyNet"), (1, "dropblock", "regbench.models.mynet.MyNet")]
    assert [j.cfg.reg.block for j in jobs[:2]] == [None, None]
    assert {j.cfg.reg.block.seed_region for j in jobs[2:]} == {"valid"}
    assert jobs[3].overrides[-4:] == ["reg=dropblock", "reg.dropblock.seed_region=valid", "experiment=dropblock_mynet",
                                      "seed=1"]


def test_a_list_of_known_group_options_is_accepted_and_an_unknown_entry_named() -> None:
    check_group_choices(parse_overrides(["reg=[dropout,dropblock]", "act=relu,dyrelu_a", "reg=[none],[dropout]"]))
    with pytest.raises(UserError, match="unknown reg 'cutmixx'; choose one of: cutmix, cutout, dropblock"):
        check_group_choices(parse_overrides(["reg=[dropout,cutmixx]"]))
    with pytest.raises(UserError, match="unknown act 'swish'"):
        check_group_choices(parse_overrides(["act=relu,swish"]))
