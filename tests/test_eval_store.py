"""What `regbench eval` keeps in eval.json: each family of figures with the checkpoint stamp and overrides it was
computed from, figures of other overrides beside the plain ones, replacements said in one line, nothing lost to
evaluations of one run at the same time; and `regbench table --metric` reading them."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from regbench.run_dir.evaluated import figures, plain, qualified, scored_before, store_evaluation
from regbench.report.aggregate import metric_value
from regbench.report.runs import load_run
from tests.conftest import read_json, regbench


def _family(acc: float, **source) -> dict:
    return dict(dict(checkpoint="best", stamp=[1, 2], overrides=[], split="test"), **source,
                figures={"test_acc": acc, "test_ece": 0.1})


def test_figures_keep_what_they_were_computed_with(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    arguments = {"checkpoint": "best", "ood": None}
    store_evaluation(tmp_path, {"test": _family(0.5)}, arguments)
    # overrides that change what is computed name the figures; one of speed alone does not
    store_evaluation(tmp_path, {"test": _family(0.6, overrides=["trainer.threads=1", "dataset.limit.test=100"])})
    assert figures(tmp_path) == {"test_acc": 0.5, "test_ece": 0.1, "test_acc[dataset.limit.test=100]": 0.6,
                                 "test_ece[dataset.limit.test=100]": 0.1}
    families = read_json(tmp_path / "eval.json")["families"]
    assert families["test[dataset.limit.test=100]"] == dict(
        checkpoint="best", stamp=[1, 2], overrides=["trainer.threads=1", "dataset.limit.test=100"], split="test",
        figures=["test_acc[dataset.limit.test=100]", "test_ece[dataset.limit.test=100]"])
    store_evaluation(tmp_path, {"test": _family(0.5, overrides=["trainer.threads=2"])})
    assert caplog.text == ""  # the same figures again: replaced without a word
    store_evaluation(tmp_path, {"test": _family(0.7, stamp=[1, 3])})
    assert figures(tmp_path)["test_acc"] == 0.7
    assert caplog.messages == [f"{tmp_path / 'eval.json'}: the test figures replace those computed with another "
                               f"checkpoint file (the run was trained further or again)"]
    assert scored_before(tmp_path, arguments) and not scored_before(tmp_path, {**arguments, "ood": "dataset=x"})
    assert read_json(tmp_path / "eval_args.json") == [arguments]


def test_a_family_scored_again_drops_the_figures_it_no_longer_has(tmp_path: Path) -> None:
    corruption = dict(checkpoint="best", stamp=[1, 2], overrides=[], split="test", corruptions="C", files="f",
                      baseline=None, baseline_stamp=None)
    store_evaluation(tmp_path, {"corruption": dict(corruption, figures={"corruption_error": 0.3,
                                                                         "extra_corruption_error": 0.5})})
    store_evaluation(tmp_path, {"corruption": dict(corruption, corruptions="D", files="g",
                                                   figures={"corruption_error": 0.4})})
    assert figures(tmp_path) == {"corruption_error": 0.4}


def test_an_older_flat_eval_json_is_read_and_its_replaced_figures_are_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "eval.json").write_text(json.dumps({"test_acc": 0.5, "ood_auroc": 0.7, "rel_mce": 1.2}))
    assert figures(tmp_path) == {"test_acc": 0.5, "ood_auroc": 0.7, "rel_mce": 1.2}
    store_evaluation(tmp_path, {"test": _family(0.6)})
    assert figures(tmp_path) == {"test_acc": 0.6, "test_ece": 0.1, "ood_auroc": 0.7, "rel_mce": 1.2}
    assert "test_acc replaced; they were stored by an older regbench" in caplog.text


def test_tables_read_the_plain_and_the_qualified_names(tmp_path: Path) -> None:
    store_evaluation(tmp_path, {"test": _family(0.5), "val": _family(0.4, overrides=["dataset.limit.val=10"])})
    run = load_run(tmp_path)
    name = qualified("test_acc", ["dataset.limit.val=10"])
    assert name == "test_acc[dataset.limit.val=10]" and plain(name) == "test_acc"
    assert metric_value(run, "test_acc") == 0.5 and metric_value(run, name) == 0.4
    # brackets take any characters, the epoch and max:/last: syntax included
    store_evaluation(tmp_path, {"test": _family(0.3, overrides=["dataset.data_file=a@1:b.tar.gz"])})
    assert metric_value(load_run(tmp_path), "test_acc[dataset.data_file=a@1:b.tar.gz]") == 0.3


WRITER = """
import sys
from pathlib import Path
from regbench.run_dir.evaluated import store_evaluation
run, writer = Path(sys.argv[1]), sys.argv[2]
for i in range(int(sys.argv[3])):
    store_evaluation(run, {f"w{writer}_{i}": dict(checkpoint="best", stamp=None, overrides=[], split="test",
                                                  figures={f"w{writer}_{i}_acc": i})}, {"writer": writer, "i": i})
"""


def test_evaluations_at_the_same_time_lose_nothing(tmp_path: Path) -> None:
    writers, each = 4, 25
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w), str(each)]) for w in range(writers)]
    assert [p.wait(timeout=300) for p in procs] == [0] * writers
    assert len(figures(tmp_path)) == len(read_json(tmp_path / "eval.json")["families"]) == writers * each
    assert len(read_json(tmp_path / "eval_args.json")) == writers * each


# --- as a user runs it ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run") / "run"
    regbench("train", "trainer.max_steps=20", "trainer.eval_every_steps=10", f"hydra.run.dir={folder}")
    return folder


@pytest.mark.slow
def test_two_evals_of_one_run_at_once_keep_both(run: Path) -> None:
    from regbench.run_dir.evaluated import checkpoint_stamp

    procs = [subprocess.Popen([sys.executable, "-m", "regbench", "eval", str(run), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for args in (("--split", "val"), ("--split", "test", "dataset.limit.test=100"))]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    val, limited = (json.loads(out) for out, _ in outputs)
    stored = read_json(run / "eval.json")
    assert stored["figures"]["val_acc"] == val["accuracy"]
    assert limited["n"] == 100 and stored["figures"]["test_acc[dataset.limit.test=100]"] == limited["accuracy"]
    assert "test_acc" not in stored["figures"]  # the test split was never scored without the override
    family = stored["families"]["test[dataset.limit.test=100]"]
    assert family["overrides"] == ["dataset.limit.test=100"] and family["stamp"] == checkpoint_stamp(run, "best")
    assert len(read_json(run / "eval_args.json")) == 2

    whole = json.loads(regbench("eval", str(run), "trainer.threads=1").stdout)  # speed only: the plain names
    stored = read_json(run / "eval.json")["figures"]
    assert stored["test_acc"] == whole["accuracy"] == pytest.approx(read_json(run / "summary.json")["test_acc"])
    assert stored["test_acc[dataset.limit.test=100]"] == limited["accuracy"] and whole["n"] == 500

    table = regbench("table", str(run), "--metric", "test_acc[dataset.limit.test=100]", cwd=run).stdout
    assert "test_acc[dataset.limit.test=100]" in table and f"{limited['accuracy']:.4f}" in table


# eval_args.json as regbench wrote it before evaluation became parts (issue 25), byte for byte, for the files that
# `_evaluated_sweep` makes: a sweep's skip must still recognise those evaluations
BEFORE_PARTS = """[
 {
  "checkpoint": "best",
  "stamp": [
   16,
   1700000000123456789
  ],
  "split": null,
  "overrides": [],
  "temperature_scale": true,
  "corruptions": "CORR",
  "corruption_files": "28c78004e8b6f9d3",
  "corruptions_set": null,
  "baseline": "BASELINE",
  "baseline_stamp": [
   16,
   1700000000123456789
  ],
  "ood": "dataset=mnist5k"
 },
 {
  "checkpoint": "last",
  "stamp": null,
  "split": "val",
  "overrides": [
   "trainer.eval_batch_size=50"
  ],
  "temperature_scale": false,
  "corruptions": "CORR",
  "corruption_files": "28c78004e8b6f9d3",
  "corruptions_set": "all",
  "baseline": null,
  "baseline_stamp": null,
  "ood": null
 }
]"""
STAMP_NS = 1_700_000_000_123_456_789


def _evaluated_sweep(root: Path) -> tuple[Path, Path]:
    """(a sweep of two completed runs, each with a best checkpoint and BEFORE_PARTS' eval_args.json, a corruption
    folder), every file's modification time STAMP_NS."""
    import os

    sweep, folder = root / "sweep", root / "corr"
    for job in ("0", "1"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / "summary.json").write_text(json.dumps({"status": "completed"}))
        (sweep / job / "checkpoints").mkdir()
        (sweep / job / "checkpoints" / "best.npz").write_bytes(b"weights of run " + job.encode())
    folder.mkdir()
    (folder / "labels.npy").write_bytes(b"labels")
    (folder / "fog.npy").write_bytes(b"fog images")
    for f in [*sweep.glob("*/checkpoints/best.npz"), *folder.iterdir()]:
        os.utime(f, ns=(STAMP_NS, STAMP_NS))
    for job in ("0", "1"):
        (sweep / job / "eval_args.json").write_text(
            BEFORE_PARTS.replace("CORR", str(folder)).replace("BASELINE", str(sweep / "0")))
    return sweep, folder


def test_evaluations_stored_before_eval_became_parts_are_recognised(tmp_path: Path) -> None:
    from regbench.inference.evaluate import arguments
    from regbench.inference.request import EvalRequest

    sweep, folder = _evaluated_sweep(tmp_path)
    requests = (EvalRequest("best", temperature_scale=True, corruptions=folder, baseline=sweep / "0",
                            ood="dataset=mnist5k"),
                EvalRequest("last", split="val", overrides=("trainer.eval_batch_size=50",), corruptions=folder,
                            corruptions_set="all"))
    # what an evaluation records now is what it recorded then, key for key in the same order
    assert [json.dumps(arguments(sweep / "0", r)) for r in requests] == [
        json.dumps(entry) for entry in read_json(sweep / "0" / "eval_args.json")]
    for options in (["--temperature-scale", "--corruptions", str(folder), "--baseline", str(sweep / "0"),
                     "--ood", "dataset=mnist5k"],
                    ["--checkpoint", "last", "--split", "val", "--corruptions", str(folder), "--corruptions-set",
                     "all", "trainer.eval_batch_size=50"]):
        proc = regbench("eval", str(sweep), *options)
        assert proc.stdout == "" and proc.stderr.splitlines() == [
            f"{sweep / job}: skipped, already evaluated with these arguments (its eval.json has the figures)"
            for job in ("0", "1")]
