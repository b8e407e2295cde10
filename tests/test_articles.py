"""One file per article: what `regbench reproduce` and `regbench table` read; its checks."""
from __future__ import annotations

import copy

import pytest
import yaml

from regbench.articles import ARTICLES_DIR, _parse, article_names, articles_by_experiment, load_article
from regbench.config import group_options
from regbench.errors import UserError


def test_the_eight_articles_and_their_run_setups() -> None:
    assert article_names() == ["dropblock", "dropblock_imagenet", "dropout", "dyrelu", "dyrelu_imagenet", "league",
                               "league_cpu", "nndl"]
    by_experiment = articles_by_experiment()
    assert {e: a.name for e, a in by_experiment.items()} == {
        "dropblock_mynet": "dropblock", "dropout_lenet": "dropout", "dyrelu_resnet18": "dyrelu", "nndl_cnn": "nndl",
        "league_resnet18": "league", "league_mynet": "league_cpu",
        "dropblock_resnet50_imagenet": "dropblock_imagenet", "dyrelu_mobilenetv2_imagenet": "dyrelu_imagenet"}
    assert set(by_experiment) <= set(group_options("experiment"))
    baselines = {a.name: a.baseline for a in by_experiment.values()}
    assert baselines == {"dropblock": "no DropBlock", "dropout": "A (none)", "dyrelu": "ReLU",
                         "nndl": "ResNet18 without residual", "league": "none",
                         "league_cpu": "none", "dropblock_imagenet": "ResNet-50", "dyrelu_imagenet": "ReLU"}
    dyrelu = load_article("dyrelu")
    assert [r.label for r in dyrelu.rows][-2:] == ["DY-ReLU-C (article's code)", "DY-ReLU-C (paper's)"]
    assert dyrelu.rows[3].published["best_val_acc"] == 0.9245 and not dyrelu.rows[4].published
    dropout = load_article("dropout")
    assert dropout.budgets["tenth"].overrides == ("trainer.epochs=100", "trainer.eval_every=5")
    # C and D: the article's figure is its last recorded train accuracy, not the best (its best starts at 0.99)
    assert dropout.rows[2].published == {"last:train_eval_acc": 0.5704}


def test_no_variant_file_only_holds_a_comment() -> None:
    experiments = ARTICLES_DIR.parent.parent / "conf" / "experiment"
    for path in experiments.rglob("*.yaml"):
        body = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert body, path


def test_unknown_article_names_the_valid_ones() -> None:
    with pytest.raises(UserError, match="unknown article 'resnet'; choose one of: dropblock, dropblock_imagenet, dropout, "
                                         "dyrelu, dyrelu_imagenet, league, league_cpu, nndl"):
        load_article("resnet")


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("baseline"), "missing or malformed field 'baseline'"),
    (lambda d: d.update(baseline="nothing"), "baseline 'nothing' is not a row label"),
    (lambda d: d.update(compare="test_acc"), "compare 'test_acc' is not a column"),
    (lambda d: d["budgets"].pop("full"), "no full budget"),
    (lambda d: d["rows"].append(dict(d["rows"][0])), "row labels repeat"),
    (lambda d: d["rows"][0]["published"].update(test_acc=0.5), "published numbers for a metric not in columns"),
    (lambda d: d["rows"][0]["overrides"].append("reg.name='x'"), "a row override with a quote"),
])
def test_a_malformed_file_says_which_field(change, message) -> None:
    data = copy.deepcopy(yaml.safe_load((ARTICLES_DIR / "dropblock.yaml").read_text()))
    change(data)
    with pytest.raises(ValueError, match=message):
        _parse("dropblock", data)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["rows"][0]["published"].update(svhn={"final_test_acc": 0.9}), "published numbers for a table not in"),
    (lambda d: d["rows"][0]["published"]["cifar10"].update(val_loss=0.5), "published numbers for a metric not in"),
    (lambda d: d["tables"].append(dict(d["tables"][0])), "table names repeat"),
    (lambda d: d["tables"][1]["overrides"].append("dataset.label='coarse'"), "a row override with a quote"),
    (lambda d: d["tables"][0].pop("title"), "missing or malformed field 'title'"),
])
def test_a_malformed_table_of_an_article_says_which_field(change, message) -> None:
    data = copy.deepcopy(yaml.safe_load((ARTICLES_DIR / "league.yaml").read_text()))
    change(data)
    with pytest.raises(ValueError, match=message):
        _parse("league", data)


def test_each_article_declares_its_evaluation() -> None:
    league_cpu = load_article("league_cpu").evaluate
    assert league_cpu.metrics == ("test_acc", "test_ece", "test_nll", "test_aece", "test_aurc", "corruption_acc")
    assert (league_cpu.mc_samples, league_cpu.ensemble) == (8, True)
    assert (load_article("nndl").evaluate.mc_samples, load_article("nndl").evaluate.ensemble) == (None, False)
    assert league_cpu.corruptions.limit == 2000 and league_cpu.corruptions.folder is None
    assert (league_cpu.checkpoint, league_cpu.splits, league_cpu.ood) == ("best", ("test",), ())
    assert load_article("nndl").tabled == ("test_acc", "test_ece", "test_nll")
    for name in article_names():  # articles 1-3 and the ImageNet papers select on the test set: val is it
        article = load_article(name)
        assert article.compare in article.tabled or name == "league"
        val_is_test = article.evaluate.splits == ("val",)
        assert val_is_test == (name not in ("league", "league_cpu", "nndl")), name


@pytest.mark.parametrize(("change", "message"), [
    (lambda e: e.update(metric=["test_acc"]), r"evaluate: unknown key\(s\) metric; known: checkpoint, corruptions, "
                                              r"ensemble, mc_samples, metrics, ood, splits$"),
    (lambda e: e.update(mc_samples=0), "evaluate.mc_samples must be a number of stochastic passes >= 1"),
    (lambda e: e.update(mc_samples="8"), "evaluate.mc_samples must be a number of stochastic passes >= 1"),
    (lambda e: e.update(ensemble="yes"), "evaluate.ensemble must be true or false"),
    (lambda e: e.update(corruptions={"generate": {"limit": 10}, "folder": "C"}), "takes one of folder: DIR or"),
    (lambda e: e.update(corruptions={"generate": {"limit": 0}}), "generate.limit must be a number of test images"),
    (lambda e: e.update(corruptions={"generate": {"limt": 5}}), r"generate: unknown key\(s\) limt; known: limit$"),
    (lambda e: e.update(checkpoint="middle"), "checkpoint 'middle' must be best or last"),
    (lambda e: e.update(metrics=["test_accuracy_gain"]), "names no known metric"),
    (lambda e: e.update(ood=[["dataset=cifar100"], ["dataset=svhn"]]), "evaluate.ood lists 2 override sets; give one"),
])
def test_a_bad_evaluate_section_is_refused_in_one_line(change, message) -> None:
    data = copy.deepcopy(yaml.safe_load((ARTICLES_DIR / "league_cpu.yaml").read_text()))
    change(data["evaluate"])
    with pytest.raises(UserError, match=message) as err:
        _parse("league_cpu", data)
    assert "\n" not in str(err.value) and "league_cpu.yaml" in str(err.value)


def test_an_unknown_field_of_an_article_is_refused() -> None:
    data = copy.deepcopy(yaml.safe_load((ARTICLES_DIR / "nndl.yaml").read_text()))
    data["evalute"] = {"metrics": ["test_acc"]}
    with pytest.raises(UserError, match=r"unknown key\(s\) evalute; known: baseline, budgets, citation, columns"):
        _parse("nndl", data)
