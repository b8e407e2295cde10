"""Report layer: run folders written as the trainer and Hydra write them -> tables, CSV, plot; experiment configs."""
from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy import stats
from statsmodels.stats.multitest import multipletests

from conftest import regbench
from regbench.errors import UserError
from regbench.report.plot import write_plot
from regbench.report.sweep import write_report
from regbench.report.table import write_table
from regbench.report.runs import find_runs, load_run
from regbench.articles import load_article
from regbench.report.matching import match_row
from regbench.report.plot import draw

CONF = Path(__file__).resolve().parents[1] / "conf"
HYDRA_GROUPS = {"hydra/launcher": "basic", "hydra/sweeper": "basic", "hydra/output": "default"}


def make_run(folder: Path, *, choices: dict[str, Any], overrides: list[str], config: dict[str, Any],
             summary: dict[str, Any] | None, metrics: list[dict[str, Any]] = ()) -> Path:
    """A run folder in the trainer's format; summary=None leaves a job that died before writing summary.json."""
    hydra = folder / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "config.yaml").write_text(yaml.safe_dump(config))
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {
        "run": {"dir": "outputs/runs/${now:%Y-%m-%d}"}, "overrides": {"hydra": [], "task": overrides},
        "runtime": {"output_dir": str(folder), "choices": {**choices, **HYDRA_GROUPS}}}}))
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return folder


def curve(val_accs: list[float], train_accs: list[float], losses: list[float]) -> list[dict[str, Any]]:
    """One metrics.jsonl line per epoch (10 steps each)."""
    return [dict(epoch=float(e + 1), step=10 * (e + 1), lr=0.001, train_loss=loss, train_acc=ta, val_loss=1.0,
                 val_acc=va, train_time_s=1.0, train_img_per_s=640.0, eval_time_s=0.1)
            for e, (va, ta, loss) in enumerate(zip(val_accs, train_accs, losses))]


def summary(status: str, metrics: list[dict[str, Any]], params: int, seed: int, error: str | None = None,
            test_acc: float | None = None, selected_on: str = "test", **choices: Any) -> dict[str, Any]:
    result = dict(status=status, **{k: choices.get(k) for k in ("model", "act", "reg", "dataset", "optim", "sched",
                                                                 "experiment")},
                  seed=seed, epochs_completed=0, steps=0, best_val_acc=None, best_epoch=None, final_val_acc=None,
                  final_train_acc=None, test_acc=test_acc, final_test_acc=test_acc, total_params=params,
                  trainable_params=params, wall_time_s=12.5, error=error,
                  selected_on=selected_on)
    if metrics:
        best, last = max(metrics, key=lambda m: m["val_acc"]), metrics[-1]
        result.update(epochs_completed=int(last["epoch"]), steps=last["step"], best_val_acc=best["val_acc"],
                      best_epoch=best["epoch"], final_val_acc=last["val_acc"], final_train_acc=last["train_acc"])
    return result


DROPBLOCK = {"_target_": "regbench.layers.dropblock.DropBlock", "_partial_": True, "block_size": 5,
             "keep_prob": 0.9, "schedule": "constant", "seed_region": "full"}


def article1_run(root: Path, name: str, *, reg: str, seed: int, status: str, val: list[float], train: list[float],
                 extra: list[str] = (), seed_region: str = "full", epochs: int = 3, error: str | None = None) -> Path:
    choices = dict(model="mynet", act="relu", reg=reg, dataset="cifar10", optim="adam", sched="constant",
                   trainer="default", experiment="dropblock_mynet")
    # as composed: reg=none keeps the experiment's reg.dropblock settings (without _target_), unused: tables show —
    dropblock = {**DROPBLOCK, "seed_region": seed_region}
    reg_cfg = {"dropblock": dropblock, "conv": None, "fc": None, "block": "${.dropblock}"} if reg == "dropblock" else {
        "dropblock": {k: v for k, v in dropblock.items() if not k.startswith("_")}, "conv": None, "fc": None,
        "block": None}
    config = {"model": {"_target_": "regbench.models.mynet.MyNet", "in_channels": "${dataset.channels}"},
              "dataset": {"channels": 3}, "reg": reg_cfg,
              "optim": {"name": "adam", "lr": 0.001}, "trainer": {"epochs": epochs, "batch_size": 64}, "seed": seed}
    overrides = ["experiment=dropblock_mynet", *extra, f"seed={seed}", "trainer.device=cpu"]
    metrics = curve(val, train, [2.0 - v for v in val])
    return make_run(root / name, choices=choices, overrides=overrides, config=config,
                    summary=summary(status, metrics, 159498, seed, error, **choices), metrics=metrics)


@pytest.fixture
def article1(tmp_path: Path) -> Path:
    """A sweep of article 1's grid with two seeds per row, a diverged run, a job that died early, a quick run."""
    sweep = tmp_path / "multirun" / "2024-01-01" / "10-00-00"
    done = "completed"
    article1_run(sweep, "0", reg="dropblock", seed=0, status=done, val=[0.50, 0.60, 0.65], train=[0.4, 0.5, 0.62])
    article1_run(sweep, "1", reg="dropblock", seed=1, status=done, val=[0.52, 0.62, 0.66], train=[0.4, 0.5, 0.64])
    none = ["reg=none"]
    article1_run(sweep, "2", reg="none", seed=0, status=done, val=[0.55, 0.62, 0.64], train=[0.5, 0.6, 0.67],
                 extra=none)
    article1_run(sweep, "3", reg="none", seed=1, status=done, val=[0.56, 0.63, 0.66], train=[0.5, 0.6, 0.69],
                 extra=none)
    article1_run(sweep, "4", reg="none", seed=2, status="diverged", val=[0.10], train=[0.1], extra=none,
                 error="training loss became nan by step 14")
    valid = ["reg.dropblock.seed_region=valid"]
    article1_run(sweep, "5", reg="dropblock", seed=0, status=done, val=[0.53, 0.63, 0.67], train=[0.4, 0.5, 0.61],
                 extra=valid, seed_region="valid")
    # Hydra created the job folder, the process died before summary.json
    make_run(sweep / "6", choices=dict(model="mynet", act="relu", reg="dropblock", dataset="cifar10", optim="adam",
                                       sched="constant", trainer="default", experiment="dropblock_mynet"),
             overrides=["experiment=dropblock_mynet", *valid, "seed=1"],
             config={"reg": {"dropblock": {**DROPBLOCK, "seed_region": "valid"}, "block": "${.dropblock}"},
                     "trainer": {"epochs": 3}, "seed": 1},
             summary=None)
    # a quick check off the article's setup: labelled with its row, no published numbers beside it
    article1_run(tmp_path / "runs", "quick", reg="dropblock", seed=0, status="completed", val=[0.45], train=[0.3],
                 extra=["trainer.epochs=1"], epochs=1)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return tmp_path


ARTICLE1_TABLE = """\
## Article 1 · DropBlock (Paddle 2.0): MyNet on CIFAR-10

Same in all runs: act=relu, dataset=cifar10, experiment=dropblock_mynet, model=mynet, optim=adam, sched=constant, \
trainer=default

| reg | reg.dropblock.seed_region | trainer.epochs | row | selected on | status | n | val acc ep1 | val acc ep1 \
(article) | val acc ep1 − article | val acc ep2 | val acc ep2 (article) | val acc ep2 − article | val acc ep3 | val \
acc ep3 (article) | val acc ep3 − article | train acc ep3 | train acc ep3 (article) | train acc ep3 − article | Δ \
vs no DropBlock | 95% CI | p | p (Holm) | test | P(A>B) | P(A>B) 95% CI | seeds for 80% power |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
| dropblock | full | 3 | DropBlock (article's) | test set (as the article) | completed | 2 | 0.5100 ± 0.0141 | \
0.5404 | -0.0304 | 0.6100 ± 0.0141 | 0.6277 | -0.0177 | 0.6550 ± 0.0071 | 0.6558 | -0.0008 | 0.6300 ± 0.0141 | \
0.6297 | +0.0003 | +0.0050 | [-0.0585, +0.0685] | 0.500 | 0.500 | paired | 0.62 | [0.11, 0.97] | 18 |
| dropblock | full | 1 | DropBlock (article's) † | test set (as the article) | completed | 1 | 0.4500 | — |  | — | \
— |  | — | — |  | — | — |  |  |  |  |  |  |  |  |  |
| none | — | 3 | no DropBlock | test set (as the article) | completed | 2 | 0.5550 ± 0.0071 | 0.5512 | +0.0038 | \
0.6250 ± 0.0071 | 0.6223 | +0.0027 | 0.6500 ± 0.0141 | 0.6442 | +0.0058 | 0.6800 ± 0.0141 | 0.6757 | +0.0043 | \
baseline |  |  |  |  |  |  |  |
| none | — | 3 | no DropBlock | test set (as the article) | diverged | 1 | 0.1000 | 0.5512 |  | — | 0.6223 |  | — | \
0.6442 |  | — | 0.6757 |  |  |  |  |  |  |  |  |  |
| dropblock | valid | 3 | DropBlock (paper's valid seeds) | test set (as the article) | completed | 1 | 0.5300 | — \
|  | 0.6300 | — |  | 0.6700 | — |  | 0.6100 | — |  | +0.0200 | n/a (n<2) | n/a (n<2) | n/a (n<2) | Welch | 1.00 | \
n/a (n<2) | n/a |
| dropblock | valid | 3 | DropBlock (paper's valid seeds) | — | missing | 1 | — | — |  | — | — |  | — | — |  | — | \
— |  |  |  |  |  |  |  |  |  |

† not the article's setup (trainer.epochs changed): its numbers are left out

The article's numbers: article 1's printed val accuracy after epochs 1-3 and train accuracy at epoch 3 (one run, \
val = test set).

Δ vs no DropBlock: val acc ep3 minus that of the no DropBlock row with the same other settings, with its 95% CI and \
p by the test the `test` column names: paired when at least 2 seeds have a run in both rows (over those seeds only: \
Δ is then the mean of the per-seed differences; paired t-test), else Welch over all runs (Welch–Satterthwaite \
interval, Welch's t-test); n/a (n<2): fewer than 2 runs on a side.

P(A>B): the probability that a run of the row beats a run of the no DropBlock row in val acc ep3 (higher is better; \
0.5: neither tends to win), the Mann–Whitney estimate over all their runs (ties count ½), with Newcombe's (2006) \
Method 5 score 95% interval, continuity-corrected (n/a (n<2) with fewer than 2 runs on a side).

seeds for 80% power: the runs per row (paired: seeds) at which the same test would detect the observed Δ at the 5% \
level, given the observed spread; > 50 when not within that.

p (Holm): p adjusted by Holm's step-down procedure over the 1 comparison of this table; the line below reads it \
(--correction holm|bh|none).

DropBlock (article's) does not differ from no DropBlock in val acc ep3 at the 5% level (paired t-test). With n=2 \
runs per row only large effects are detectable: no significant difference is not evidence of no effect.

Not completed (never averaged with the completed runs):
- diverged: multirun/2024-01-01/10-00-00/4 (seed 2): training loss became nan by step 14
- missing: multirun/2024-01-01/10-00-00/6 (seed 1): no summary.json
"""


def test_article_table_aggregates_seeds_and_sets_published_numbers_beside(article1: Path) -> None:
    markdown = write_table([article1])
    assert markdown == ARTICLE1_TABLE.replace(" \\\n", " ")
    assert (article1 / "table.md").read_text() == markdown


def test_csv_has_unformatted_numbers_per_row(article1: Path) -> None:
    write_table([article1 / "multirun", article1 / "runs"])
    rows = list(csv.DictReader(io.StringIO((article1 / "multirun" / "table.csv").read_text())))
    assert [(r["reg"], r["reg.dropblock.seed_region"], r["status"], r["n"]) for r in rows] == [
        ("dropblock", "full", "completed", "2"), ("dropblock", "full", "completed", "1"),
        ("none", "—", "completed", "2"), ("none", "—", "diverged", "1"),
        ("dropblock", "valid", "completed", "1"), ("dropblock", "valid", "missing", "1")]
    first = rows[0]
    assert first["table"] == "Article 1 · DropBlock (Paddle 2.0): MyNet on CIFAR-10"
    assert first["row"] == "DropBlock (article's)" and first["experiment"] == "dropblock_mynet"
    assert float(first["val_acc@3_mean"]) == pytest.approx(0.655)
    assert float(first["val_acc@3_std"]) == pytest.approx(0.0070711, abs=1e-7)
    assert first["val_acc@3_n"] == "2"
    assert float(first["val_acc@3_article"]) == 0.6558
    assert float(first["val_acc@3_vs_article"]) == pytest.approx(0.655 - 0.6558)
    assert first["selected_on"] == "test set (as the article)" and first["budget"] == "full"
    # against no DropBlock, paired over seeds 0 and 1: differences 0.65 − 0.64 and 0.66 − 0.66
    assert (first["compare"], first["baseline"], first["is_baseline"]) == ("val_acc@3", "no DropBlock", "False")
    assert (first["test"], first["pairs"]) == ("paired", "2")
    dropblock, none = [0.65, 0.66], [0.64, 0.66]
    assert float(first["delta"]) == pytest.approx(0.005)
    assert float(first["p"]) == pytest.approx(stats.ttest_rel(dropblock, none).pvalue, abs=1e-12)
    assert float(first["p"]) == pytest.approx(0.5)  # t = 1 with 1 degree of freedom: Cauchy
    # the mean difference ± the 97.5% quantile of t(1) (tan(0.475π)) × the standard error 0.005
    half = math.tan(0.475 * math.pi) * 0.005
    assert (float(first["ci_low"]), float(first["ci_high"])) == pytest.approx((0.005 - half, 0.005 + half), abs=1e-9)
    # P(A>B) by hand: 0.65 beats 0.64, loses to 0.66; 0.66 beats 0.64, ties 0.66 (½): 2.5 of 4
    assert float(first["prob_better"]) == 0.625
    assert float(first["prob_better"]) == stats.mannwhitneyu(dropblock, none).statistic / 4
    assert 0 <= float(first["prob_better_low"]) <= 0.625 <= float(first["prob_better_high"]) <= 1
    assert rows[1]["row"] == "DropBlock (article's) †" and rows[1]["val_acc@1_article"] == ""
    assert rows[1]["budget"] == "" and rows[1]["delta"] == ""  # no baseline run with trainer.epochs=1
    assert rows[2]["is_baseline"] == "True" and rows[2]["delta"] == ""
    paper = rows[4]  # one run: the difference, but no interval or p
    assert float(paper["delta"]) == pytest.approx(0.67 - 0.65) and paper["ci_low"] == paper["p"] == ""
    assert paper["undefined"] == "n<2" and first["undefined"] == rows[2]["undefined"] == ""
    # seed 0 alone is in both rows: too few to pair, Welch over the runs, which has too few runs too
    assert (paper["test"], paper["pairs"], paper["prob_better"], paper["prob_better_low"]) == ("welch", "", "1.0", "")
    diverged = rows[3]
    assert diverged["val_acc@1_mean"] == "0.1" and diverged["val_acc@1_std"] == ""
    assert diverged["val_acc@1_article"] == "0.5512" and diverged["val_acc@1_vs_article"] == ""
    assert diverged["val_acc@3_mean"] == "" and diverged["val_acc@3_n"] == "0"


def dyrelu_run(folder: Path, *, act: str, seed: int, params: int, val: list[float], experiment: str | None,
               test_acc: float | None = None, status: str = "completed", softmax: str | None = None,
               reg: str = "none") -> Path:
    choices = dict(model="resnet18", act=act, reg=reg, dataset="synthetic", optim="momentum", sched="cosine",
                   trainer="default", experiment=experiment)
    overrides = ([f"experiment={experiment}"] if experiment else []) + [f"act={act}", f"seed={seed}"]
    overrides += [f"reg={reg}"] if reg != "none" else []
    overrides += [f"act.attention_softmax={softmax}"] if softmax else []
    metrics = curve(val, [v + 0.05 for v in val], [1.0 / (i + 1) for i in range(len(val))])
    config = {"act": {"_target_": f"regbench.layers.dyrelu.{act}",
                      **({"attention_softmax": softmax or "positions"} if act == "dyrelu_c" else {})}, "seed": seed}
    return make_run(folder, choices=choices, overrides=overrides, config=config, metrics=metrics,
                    summary=summary(status, metrics, params, seed, test_acc=test_acc,
                                    selected_on="val" if experiment is None else "test", **choices))


EXPECTED_SECTIONS = """\
## Article 3 · Dynamic ReLU (Paddle): ResNet18 on CIFAR-10

Same in all runs: dataset=synthetic, experiment=dyrelu_resnet18, model=resnet18, optim=momentum, reg=none, \
sched=cosine, trainer=default

| act | act.attention_softmax | row | selected on | status | n | train acc | train acc (article) | train acc − \
article | val acc (best) | val acc (best) (article) | val acc (best) − article | params | params (article) | params \
− article | Δ vs ReLU | 95% CI | p | p (Holm) | test | P(A>B) | P(A>B) 95% CI | seeds for 80% power |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
| relu | — | ReLU | test set (as the article) | completed | 1 | 0.9500 | 0.8978 | +0.0522 | 0.9000 | 0.9213 | \
-0.0213 | 11,183,562 | 11,183,562 | +0 | baseline |  |  |  |  |  |  |  |
| dyrelu_c | width | DY-ReLU-C (article's code) | test set (as the article) | completed | 1 | 0.9600 | 0.9054 | \
+0.0546 | 0.9100 | 0.9245 | -0.0145 | 12,076,547 | 12,076,547 | +0 | +0.0100 | n/a (n<2) | n/a (n<2) | n/a (n<2) | \
Welch | 1.00 | n/a (n<2) | n/a |
| dyrelu_c | positions | DY-ReLU-C (paper's) | test set (as the article) | completed | 1 | 0.9800 | — |  | 0.9300 | \
— |  | 12,076,547 | — |  | +0.0300 | n/a (n<2) | n/a (n<2) | n/a (n<2) | Welch | 1.00 | n/a (n<2) | n/a |

The article's numbers: article 3's train accuracy, best val accuracy (val = test set) and paddle.summary parameter \
count (seed 42).

Δ vs ReLU: val acc (best) minus that of the ReLU row with the same other settings, with its 95% CI and p by the \
test the `test` column names: paired when at least 2 seeds have a run in both rows (over those seeds only: Δ is \
then the mean of the per-seed differences; paired t-test), else Welch over all runs (Welch–Satterthwaite interval, \
Welch's t-test); n/a (n<2): fewer than 2 runs on a side.

P(A>B): the probability that a run of the row beats a run of the ReLU row in val acc (best) (higher is better; 0.5: \
neither tends to win), the Mann–Whitney estimate over all their runs (ties count ½), with Newcombe's (2006) Method \
5 score 95% interval, continuity-corrected (n/a (n<2) with fewer than 2 runs on a side).

seeds for 80% power: the runs per row (paired: seeds) at which the same test would detect the observed Δ at the 5% \
level, given the observed spread; > 50 when not within that.

No row can be tested against ReLU (fewer than 2 runs on a side): no val acc (best) difference can be tested (n/a).

## Runs without an experiment

Same in all runs: act=relu, dataset=synthetic, experiment=null, model=resnet18, optim=momentum, reg=none, \
sched=cosine, trainer=default

| selected on | status | n | final val acc | best val acc | test acc | final test acc | params | epochs |
|---|---|---|---|---|---|---|---|---|
| held-out val | completed | 2 | 0.4500 ± 0.0707 | 0.4500 ± 0.0707 | 0.4000 ± 0.0283 | 0.4000 ± 0.0283 | 62,006 | 2 |
| held-out val | running | 1 | 0.3500 | 0.3500 | — | — | 62,006 | 1 |

Not completed (never averaged with the completed runs):
- running: b/2 (seed 2)
"""


def test_sections_per_experiment_with_generic_columns_for_runs_without_one(tmp_path: Path) -> None:
    dyrelu_run(tmp_path / "a" / "0", act="relu", seed=42, params=11183562, val=[0.5, 0.9], experiment="dyrelu_resnet18")
    dyrelu_run(tmp_path / "a" / "1", act="dyrelu_c", seed=42, params=12076547, val=[0.6, 0.93],
               experiment="dyrelu_resnet18", softmax="positions")
    dyrelu_run(tmp_path / "a" / "2", act="dyrelu_c", seed=42, params=12076547, val=[0.6, 0.91],
               experiment="dyrelu_resnet18", softmax="width")
    dyrelu_run(tmp_path / "b" / "0", act="relu", seed=0, params=62006, val=[0.3, 0.4], experiment=None, test_acc=0.38)
    dyrelu_run(tmp_path / "b" / "1", act="relu", seed=1, params=62006, val=[0.3, 0.5], experiment=None, test_acc=0.42)
    dyrelu_run(tmp_path / "b" / "2", act="relu", seed=2, params=62006, val=[0.35], experiment=None, status="running")
    markdown = write_table([tmp_path])
    assert markdown == EXPECTED_SECTIONS.replace(" \\\n", " ")
    csv_rows = list(csv.DictReader(io.StringIO((tmp_path / "table.csv").read_text())))
    assert [r["table"] for r in csv_rows] == ["Article 3 · Dynamic ReLU (Paddle): ResNet18 on CIFAR-10"] * 3 + [
        "Runs without an experiment"] * 2
    assert [r["status"] for r in csv_rows] == ["completed"] * 4 + ["running"]
    assert csv_rows[3]["total_params_mean"] == "62006.0" and csv_rows[3]["total_params_std"] == "0.0"
    assert csv_rows[3]["test_acc_n"] == "2" and "test_acc_article" not in csv_rows[3]
    assert csv_rows[3]["selected_on"] == "held-out val"


def test_not_applicable_says_why_fewer_than_two_runs_or_no_spread(tmp_path: Path) -> None:
    for seed in (0, 1):  # the baseline: seeds 0 and 1, both 0.5
        dyrelu_run(tmp_path / "relu" / str(seed), act="relu", seed=seed, params=10, val=[0.5], experiment=None,
                   test_acc=0.5)
        # other seeds, each side constant: Welch's test is undefined
        dyrelu_run(tmp_path / "b" / str(seed), act="dyrelu_b", seed=seed + 2, params=10, val=[0.5], experiment=None,
                   test_acc=0.6)
        # the same seeds, the same difference for each: the paired t-test is undefined
        dyrelu_run(tmp_path / "c" / str(seed), act="dyrelu_c", seed=seed, params=10, val=[0.5], experiment=None,
                   test_acc=0.7)
    dyrelu_run(tmp_path / "a" / "0", act="dyrelu_a", seed=0, params=10, val=[0.5], experiment=None, test_acc=0.55)
    markdown = write_table([tmp_path])
    lines = {line.split(" | ")[0]: line for line in markdown.splitlines() if line.startswith("| ")}
    assert lines["| relu"].endswith("| baseline |  |  |  |  |  |  |  |")
    assert lines["| dyrelu_a"].endswith(
        "| +0.0500 | n/a (n<2) | n/a (n<2) | n/a (n<2) | Welch | 1.00 | n/a (n<2) | n/a |")
    # 2 runs against 2, every one beating: the interval keeps room below 1 (Newcombe's score interval)
    assert lines["| dyrelu_b"].endswith(
        "| +0.1000 | n/a (no spread) | n/a (no spread) | n/a (no spread) | Welch | 1.00 | [0.30, 1.00] | n/a |")
    assert lines["| dyrelu_c"].endswith(
        "| +0.2000 | n/a (no spread) | n/a (no spread) | n/a (no spread) | paired | 1.00 | [0.30, 1.00] | n/a |")
    assert ("Welch's t-test); n/a (n<2): fewer than 2 runs on a side; n/a (no spread): every run on both sides has the "
            "same value, where Welch's test is undefined, or every seed's difference is the same, where the paired "
            "t-test is undefined.") in markdown
    assert ("No row can be tested against act=relu (fewer than 2 runs on a side; every run on both sides has the same "
            "value, where Welch's test is undefined, or every seed's difference is the same, where the paired t-test "
            "is undefined): no test acc difference can be tested (n/a).") in markdown
    rows = {r["act"]: r for r in csv.DictReader(io.StringIO((tmp_path / "table.csv").read_text()))}
    assert {act: (r["undefined"], r["ci_low"], r["p"], r["test"], r["pairs"]) for act, r in rows.items()} == {
        "relu": ("", "", "", "", ""), "dyrelu_a": ("n<2", "", "", "welch", ""),
        "dyrelu_b": ("no spread", "", "", "welch", ""), "dyrelu_c": ("no spread", "", "", "paired", "2")}
    assert float(rows["dyrelu_b"]["delta"]) == pytest.approx(0.1)
    assert float(rows["dyrelu_c"]["delta"]) == pytest.approx(0.2)


@pytest.mark.slow
def test_plot_and_report_of_a_sweep_with_failed_jobs(article1: Path) -> None:
    sweep = article1 / "multirun" / "2024-01-01" / "10-00-00"
    failed = sweep / "7"
    article1_run(sweep, "7", reg="none", seed=3, status="failed", val=[], train=[], extra=["reg=none"],
                 error="UserError: dataset.data_file does not exist")
    markdown = write_report(sweep)
    assert markdown == (sweep / "table.md").read_text()
    assert "| none | — | no DropBlock | test set (as the article) | failed | 1 |" in markdown
    assert f"- failed: {failed.name} (seed 3): UserError: dataset.data_file does not exist" in markdown
    assert (sweep / "table.csv").read_text().count("\n") == 1 + 6  # header + rows (quick run is not in the sweep)
    png = (sweep / "plot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    path = write_plot([article1 / "runs"])
    assert path == article1 / "runs" / "plot.png" and path.read_bytes().startswith(b"\x89PNG")


def whole_epoch_ticks(fig: Figure) -> list[list[float]]:
    """The x ticks in view of each panel."""
    fig.canvas.draw()
    return [[t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]] for ax in fig.axes]


def test_plot_has_integer_epochs_the_legend_outside_a_min_max_band_and_the_article_row_labels(article1: Path) -> None:
    fig = draw(find_runs([article1 / "runs"]))  # a single evaluation, at epoch 1
    try:
        assert whole_epoch_ticks(fig) == [[0, 1], [0, 1]]
    finally:
        plt.close(fig)
    fig = draw(find_runs([article1]))
    try:
        for ticks in whole_epoch_ticks(fig):
            assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
        legend, = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == [
            "no DropBlock, trainer.epochs=3 (n=2)", "no DropBlock, trainer.epochs=3 (n=1, diverged)",
            "DropBlock (article's), trainer.epochs=1 (n=1)", "DropBlock (article's), trainer.epochs=3 (n=2)",
            "DropBlock (paper's valid seeds), trainer.epochs=3 (n=1)"]  # the job that died early has no curve
        assert "min–max" in legend.get_title().get_text()
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent())
        val = fig.axes[0]
        bands = [c.get_paths()[0].vertices for c in val.collections]  # one per group of 2 or more runs
        spans = sorted((round(v[:, 1].min(), 4), round(v[:, 1].max(), 4)) for v in bands)
        assert spans == [(0.5, 0.66), (0.55, 0.66)]  # DropBlock seeds 0.50-0.66, no DropBlock 0.55-0.66
    finally:
        plt.close(fig)


def test_plot_of_runs_without_any_evaluation_is_still_written(tmp_path: Path) -> None:
    make_run(tmp_path / "0", choices={"model": "mynet"}, overrides=[], config={"seed": 0}, summary=None)
    assert write_plot([tmp_path]).read_bytes().startswith(b"\x89PNG")


def test_finding_runs_and_bad_folders(tmp_path: Path, article1: Path) -> None:
    runs = find_runs([article1, article1 / "multirun"])  # overlapping folders: each run once
    assert len(runs) == 8
    assert {r.status for r in runs} == {"completed", "diverged", "missing"}
    copied = tmp_path / "copied"  # a run folder copied without its .hydra/: the choices come from summary.json
    copied.mkdir()
    (copied / "summary.json").write_text(json.dumps(summary("interrupted", curve([0.3], [0.2], [2.0]), 10, 0,
                                                            model="mynet", reg="none", experiment=None)))
    run = load_run(copied)
    assert (run.status, run.choices["model"], run.choices["reg"], run.metrics) == ("interrupted", "mynet", "none", [])
    with pytest.raises(UserError, match="not a folder"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run folders"):
        write_table([tmp_path / "empty"])


def test_report_reads_run_folders_without_importing_the_trainer_or_paddle() -> None:
    code = "import sys, regbench.report; print(sorted(m for m in sys.modules if m.split('.')[0] == 'paddle' " \
           "or m.startswith(('regbench.train', 'regbench.models', 'regbench.layers'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=CONF.parent).stdout
    assert out.strip() == "[]"


# -- experiment configs ----------------------------------------------------------------------------------------------

def composed(*overrides: str, hydra: bool = False) -> Any:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def test_dropblock_mynet_is_article_1() -> None:
    cfg = composed("experiment=dropblock_mynet")
    assert cfg.model._target_.endswith("MyNet")
    assert cfg.dataset.load._target_.endswith("load_cifar10")
    assert (list(cfg.dataset.mean), list(cfg.dataset.std), list(cfg.dataset.augment)) == ([0, 0, 0], [1, 1, 1], [])
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.sched.name) == ("adam", 0.001, 0.0, "constant")
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.eval_every, cfg.trainer.label_smoothing) == (
        3, 64, 1, 0.0)
    block = cfg.reg.block
    assert block._target_.endswith("placed_dropblock") and block.placement == "stage"
    assert cfg.reg.conv is None and cfg.reg.fc is None
    assert (block.block_size, block.keep_prob, block.schedule, block.seed_region) == (5, 0.9, "constant", "full")
    valid = composed("experiment=dropblock_mynet", "reg.dropblock.seed_region=valid").reg.block
    assert (valid.block_size, valid.keep_prob, valid.seed_region) == (5, 0.9, "valid")


def test_dropblock_mynet_rows_build_the_article_models() -> None:
    """The article's DropBlock after conv3, seeds anywhere; reg=none leaves the experiment's settings unused."""
    from regbench.reg.dropblock import DropBlock
    from regbench.models import build_model

    def dropblocks(*overrides: str) -> list[DropBlock]:
        cfg = composed("experiment=dropblock_mynet", *overrides)
        return [m for m in build_model(cfg.model, cfg.act, cfg.reg).sublayers() if isinstance(m, DropBlock)]

    [article] = dropblocks()
    assert (article.block_size, article.keep_prob, article.seed_region, article.schedule) == (
        5, 0.9, "full", "constant")
    assert dropblocks("reg=none") == []


def test_dropout_lenet_is_article_2() -> None:
    cfg = composed("experiment=dropout_lenet")
    assert cfg.model._target_.endswith("LeNet5") and cfg.model.pool2 == "max"
    assert cfg.dataset.load._target_.endswith("load_cifar10")
    assert (list(cfg.dataset.mean), list(cfg.dataset.std), list(cfg.dataset.augment)) == ([0.5] * 3, [0.5] * 3, [])
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("momentum", 0.01, 0.9, 0.0)
    assert (cfg.sched.name, cfg.sched.interval, cfg.sched.step_size, cfg.sched.gamma) == ("step", "epoch", 150, 0.5)
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.eval_every, cfg.trainer.drop_last) == (
        1000, 256, 20, False)
    for reg, places in (("none", set()), ("dropout", {"fc"}), ("dropout2d", {"conv"}), ("dropout_all", {"conv", "fc"})):
        cfg = composed("experiment=dropout_lenet", f"reg={reg}")
        assert {k for k in ("conv", "fc", "block") if cfg.reg[k] is not None} == places and cfg.reg.p == 0.5


def test_dyrelu_resnet18_is_article_3() -> None:
    cfg = composed("experiment=dyrelu_resnet18", "act=dyrelu_c")
    assert cfg.model._target_.endswith("ResNet18") and cfg.model.stem == "cifar" and cfg.model.use_residual
    assert (cfg.act._target_, cfg.act.reduction, cfg.act.k) == ("regbench.layers.dyrelu.DyReLUC", 8, 2)
    assert list(cfg.dataset.augment) == ["resized_crop", "flip"] and list(cfg.dataset.resized_crop_scale) == [0.08, 1.0]
    assert (list(cfg.dataset.mean), list(cfg.dataset.std)) == ([0.5] * 3, [0.5] * 3)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("momentum", 0.1, 0.9, 5e-4)
    assert (cfg.sched.name, cfg.sched.interval, cfg.sched.T_max, cfg.sched.eta_min) == ("cosine", "step", None, 0.0)
    trainer = cfg.trainer
    assert (trainer.epochs, trainer.batch_size, trainer.drop_last, trainer.label_smoothing) == (50, 256, True, 0.1)
    assert cfg.seed == 42


def test_nndl_cnn_is_article_4() -> None:
    cfg = composed("experiment=nndl_cnn")
    assert cfg.model._target_.endswith("LeNet5") and cfg.model.pool2 == "avg"
    assert cfg.dataset.load._target_.endswith("load_mnist") and cfg.dataset.image_size == 32
    assert dict(cfg.dataset.limit) == {"train": 1000, "val": 200, "test": 200}
    assert (list(cfg.dataset.mean), list(cfg.dataset.std), list(cfg.dataset.augment)) == ([0.5], [0.5], [])
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.sched.name) == ("sgd", 0.1, 0.0, "constant")
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.eval_every_steps) == (5, 64, 15)
    plain = composed("experiment=nndl_cnn", "model=resnet18_nndl", "model.use_residual=false", "optim.lr=0.005")
    assert (plain.model.stem, plain.model.use_residual, plain.optim.lr) == ("imagenet", False, 0.005)


@pytest.mark.slow
def test_baseline_defaults_to_reg_none_and_any_row_can_be_chosen(tmp_path: Path) -> None:
    """A sweep of no article: Δ vs reg=none by default, vs any KEY=VALUE on request, by the command line; paired over
    the seeds a row shares with its baseline, else Welch; P(A>B) beside."""
    tests = {"none": {0: 0.60, 1: 0.62, 2: 0.61},
             "dropout": {0: 0.70, 1: 0.71, 2: 0.72},         # far above, the same seeds
             "dropout2d": {0: 0.605, 1: 0.626, 2: 0.614},    # +0.004 to +0.006 on every seed: only pairing sees it
             "dropblock": {3: 0.615, 4: 0.605, 5: 0.625},    # other seeds: Welch
             "cutout": {1: 0.63, 2: 0.60, 3: 0.64}}          # seeds 1 and 2 shared: paired on those two
    for reg, accs in tests.items():
        for seed, acc in accs.items():
            dyrelu_run(tmp_path / "sweep" / f"{reg}{seed}", act="relu", reg=reg, seed=seed, params=62006,
                       val=[acc], experiment=None, test_acc=acc)
    table = regbench("table", str(tmp_path / "sweep"), cwd=tmp_path).stdout
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].endswith("| Δ vs reg=none | 95% CI | p | p (Holm) | test | P(A>B) | P(A>B) 95% CI | seeds for "
                             "80% power |")
    assert [line.split(" | ")[0] for line in lines[1:]] == [
        "| none", "| cutout", "| dropblock", "| dropout", "| dropout2d"]  # baseline first
    assert lines[1].endswith("| baseline |  |  |  |  |  |  |  |")
    # dropout: differences 0.10, 0.09, 0.11: mean 0.1, sd 0.01, t(2) 97.5% = 4.30265 -> ± 0.024841; p 0.0033, the
    # smallest of 4, times 4 by Holm; an effect of 10 sds: 2 seeds (t with 1 df) have 0.73 power, 3 more than 0.8
    assert lines[4].endswith("| +0.1000 | [+0.0752, +0.1248] | 0.003 | 0.013 | paired | 1.00 | [0.45, 1.00] | 3 |")
    # cutout's 0.63 and 0.64 beat all three, its 0.60 ties one: (3 + 0.5 + 3) / 9
    assert lines[2].split(" | ")[-4:-2] == ["paired (2 seeds)", "0.72"]
    assert lines[3].split(" | ")[-4] == "Welch"
    rows = {r["reg"]: r for r in csv.DictReader(io.StringIO((tmp_path / "sweep" / "table.csv").read_text()))}
    base = tests["none"]
    for reg, accs in tests.items():
        if reg == "none":
            continue
        row = rows[reg]
        common = [seed for seed in accs if seed in base]
        if len(common) >= 2:
            a, b = [accs[s] for s in common], [base[s] for s in common]
            expected = stats.ttest_rel(a, b)
            assert (row["test"], int(row["pairs"])) == ("paired", len(common))
            half = stats.t.ppf(0.975, len(a) - 1) * stats.sem([x - y for x, y in zip(a, b)])
        else:
            a, b = list(accs.values()), list(base.values())
            expected = stats.ttest_ind(a, b, equal_var=False)
            assert (row["test"], row["pairs"]) == ("welch", "")
            va, vb = stats.tvar(a) / len(a), stats.tvar(b) / len(b)
            half = stats.t.ppf(0.975, (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))) * (
                va + vb) ** 0.5
        delta = sum(a) / len(a) - sum(b) / len(b)
        assert float(row["delta"]) == pytest.approx(delta, abs=1e-12)
        assert float(row["p"]) == pytest.approx(expected.pvalue, rel=1e-9)
        assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((delta - half, delta + half), abs=1e-12)
        # P(A>B) over all runs of both rows: the Mann–Whitney U of the row against the baseline over n_a·n_b
        u = stats.mannwhitneyu(list(accs.values()), list(base.values())).statistic
        assert float(row["prob_better"]) == pytest.approx(u / 9, abs=1e-12)
        assert 0 <= float(row["prob_better_low"]) <= float(row["prob_better"]) <= float(row["prob_better_high"]) <= 1
    # Holm over the 4 comparisons, as statsmodels adjusts them; the verdicts below read the adjusted p
    compared = [reg for reg in tests if reg != "none"]
    holm = multipletests([float(rows[reg]["p"]) for reg in compared], method="holm")[1]
    assert [float(rows[reg]["p_adjusted"]) for reg in compared] == pytest.approx(list(holm), rel=1e-12)
    assert {rows[reg]["correction"] for reg in tests} == {"holm"}
    assert float(rows["dropout2d"]["p"]) < 0.05 < stats.ttest_ind(list(tests["dropout2d"].values()),
                                                                  list(base.values()), equal_var=False).pvalue
    assert ("reg=dropout (paired t-test), reg=dropout2d (paired t-test) are better than reg=none in test acc at the "
            "5% level; reg=cutout (paired t-test), reg=dropblock (Welch's t-test) do not differ. With n=2–3 runs per "
            "row only large effects are detectable") in table
    out = regbench("table", "--baseline", "reg=dropout", str(tmp_path / "sweep"), cwd=tmp_path).stdout
    assert "| Δ vs reg=dropout | 95% CI | p | p (Holm) | test | P(A>B) | P(A>B) 95% CI | seeds for 80% power |" in out
    assert "| -0.1000 | [-0.1248, -0.0752] | 0.003 | 0.010 | paired | 0.00 | [0.00, 0.55] | 3 |" in out
    bad = regbench("table", "--baseline", "reg=mixup", str(tmp_path / "sweep"), cwd=tmp_path, check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "regbench: error: --baseline reg=mixup matches no run: reg is one of cutout, dropblock, dropout, dropout2d, "
        "none")
    bad = regbench("table", "--baseline", "reg", str(tmp_path / "sweep"), cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "must be KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr
