"""The times a run reports: training steps and evaluations counted apart, each second at most once."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import read_json, read_jsonl, regbench


@pytest.mark.slow
def test_train_and_eval_times_are_disjoint_parts_of_the_run(tmp_path: Path) -> None:
    # evaluation dominates: 2,048 val images (val_size=0: the test set is val) after every 2 training steps of 16
    run = tmp_path / "run"
    regbench("train", "model=mynet", "dataset=synthetic", "dataset.train_size=128", "dataset.test_size=2048",
             "dataset.val_size=0",
             "trainer.batch_size=16", "trainer.max_steps=8", "trainer.eval_every_steps=2", "trainer.log_every=1",
             f"hydra.run.dir={run}", cwd=tmp_path)
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert all(r["train_time_s"] > 0 and r["eval_time_s"] > 0 for r in rows)
    # the process's own clock bounds the sum: had a window's train time included the previous evaluation (or
    # its checkpoint and plot), evaluations would be counted twice and the sum would exceed the run's wall time
    wall = read_json(run / "summary.json")["wall_time_s"]
    assert sum(r["train_time_s"] + r["eval_time_s"] for r in rows) < wall
    # three evaluations of 2,048 images dwarf two steps of 16: they are not in the later windows' train time
    assert sum(r["train_time_s"] for r in rows[1:]) < sum(r["eval_time_s"] for r in rows[:-1])
