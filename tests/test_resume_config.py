"""Resuming checks that the command line describes the run its folder holds; a run's length may grow."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import read_json, read_jsonl, regbench

# 4 steps per epoch, evaluated every 2 steps
RUN = {"model": "mynet", "dataset": "synthetic", "dataset.train_size": "128", "dataset.test_size": "32",
       "trainer.batch_size": "32", "trainer.epochs": "1", "trainer.eval_every_steps": "2"}


def args(**changes: str) -> list[str]:
    return [f"{k}={v}" for k, v in {**RUN, **{k.replace("__", "."): v for k, v in changes.items()}}.items()]


def files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("resume") / "run"
    regbench("train", *args(), f"hydra.run.dir={run}")
    return run


@pytest.mark.parametrize("change, named", [
    (dict(model="lenet5"), "model mynet → lenet5"),
    (dict(trainer__batch_size="16"), "trainer.batch_size 32 → 16"),
    (dict(optim="adam"), "optim momentum → adam"),
    (dict(optim__lr="0.5"), "optim.lr 0.01 → 0.5"),
    (dict(reg="dropout", act="dyrelu_a"), "act relu → dyrelu_a; reg none → dropout"),
    (dict(dataset__augment="[]"), "dataset.augment ['crop', 'flip'] → []"),
    (dict(seed="1"), "seed 0 → 1."),  # the seeds.* following it are named by it
    (dict(seeds__order="1"), "seeds.order 0 → 1."),
    (dict(dataset__split_seed="8"), "dataset.split_seed 7 → 8."),
    (dict(trainer__sync_bn="true"), "trainer.sync_bn False → True"),
    (dict(trainer__amp="fp16"), "trainer.amp off → fp16"),
    (dict(trainer__eval_every_steps="4"), "trainer.eval_every_steps 2 → 4"),
    (dict(trainer__max_steps="2"), "trainer.max_steps None → 2 (a run may grow, not shrink)"),
], ids=["model", "batch_size", "optim", "lr", "act+reg", "dataset", "seed", "seeds.order", "split_seed", "sync_bn",
        "amp", "eval_every_steps", "shrink"])
@pytest.mark.slow
def test_resuming_another_run_is_refused_and_touches_no_file(tmp_path: Path, finished: Path, change: dict,
                                                              named: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = files(run)
    proc = regbench("train", *args(**change), "trainer.resume=true", f"hydra.run.dir={run}", cwd=tmp_path,
                    check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"trainer.resume=true, but {run} holds another run: {named}" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert files(run) == before  # .hydra/*.yaml, train.log, summary, checkpoints: every byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.slow
def test_a_completed_run_resumed_with_other_threads_is_skipped_untouched(tmp_path: Path, finished: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    kept = {p: b for p, b in files(run).items() if ".hydra" not in p.parts and p.name != "train.log"}
    out = regbench("train", *args(trainer__threads="1", trainer__log_every="1", trainer__eval_batch_size="8"),
                   "trainer.resume=true", f"hydra.run.dir={run}").stdout
    assert "already completed with this config, nothing to resume" in out and "resumed from" not in out
    assert {p: b for p, b in files(run).items() if p in kept} == kept  # summary, metrics, checkpoints: not retrained


@pytest.mark.slow
def test_a_sweep_resumed_with_other_values_is_refused_naming_the_job_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    common = ("train", "-m", *args(trainer__max_steps="2"), f"hydra.sweep.dir={sweep}",
              "hydra.sweep.subdir=job${hydra.job.num}")
    regbench(*common, "seed=0,1")
    before = files(sweep)
    assert (sweep / "job1" / "checkpoints" / "last.npz") in before
    proc = regbench(*common, "seed=0,2", "trainer.resume=true", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"but {sweep / 'job1'} holds another run: seed 1 → 2." in proc.stderr  # job0 is the same run
    proc = regbench(*common, "seed=0,1", "trainer.batch_size=64", "trainer.resume=true", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and f"but {sweep / 'job0'} holds another run: trainer.batch_size 32 → 64" in proc.stderr
    assert files(sweep) == before  # multirun.yaml included
    assert "already completed" in regbench(*common, "seed=0,1", "trainer.resume=true").stdout


@pytest.mark.slow
def test_a_finished_run_resumed_with_more_epochs_continues_on_the_longer_schedule(tmp_path: Path,
                                                                                   finished: Path) -> None:
    run, longer = tmp_path / "run", tmp_path / "longer"
    shutil.copytree(finished, run)
    regbench("train", *args(trainer__epochs="2"), "trainer.resume=true", f"hydra.run.dir={run}")
    regbench("train", *args(trainer__epochs="2"), f"hydra.run.dir={longer}")
    grown, reference = read_jsonl(run / "metrics.jsonl"), read_jsonl(longer / "metrics.jsonl")
    assert [r["step"] for r in grown] == [r["step"] for r in reference] == [2, 4, 6, 8]
    # after the resume the cosine schedule is the one of the 2-epoch run, not the finished 1-epoch one's end (0), bit
    # for bit: the schedule is replayed from its start (Paddle's cosine is recursive; its closed form differs in the
    # last digit at some steps)
    assert [r["lr"] for r in grown[2:]] == [r["lr"] for r in reference[2:]]
    assert grown[2]["lr"] > 0.001
    summary = read_json(run / "summary.json")
    assert (summary["status"], summary["steps"], summary["epochs_completed"]) == ("completed", 8, 2)
