"""The DropBlock and Dynamic ReLU papers' ImageNet settings: their experiments compose with the cited values, their
articles hold the published rows, their proxy budgets pick the proxy datasets, and the quick budget runs end to end
on a generated ImageNet-layout folder of 1,000 classes."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import read_json, regbench, run_folders
from folders import imagenet_tree
from regbench.articles import load_article
from regbench.config import compose
from regbench.reg.dropblock import DropBlock
from regbench.models import build_model
from regbench.report.runs import load_run
from regbench.reproduce import sweep_overrides


def test_the_dropblock_setup_is_the_papers_imagenet_protocol() -> None:
    cfg = compose(["experiment=dropblock_resnet50_imagenet", "dataset.root=DIR"])
    choices = cfg.hydra.runtime.choices
    assert (choices.model, choices.reg, choices.dataset) == ("resnet50", "dropblock", "imagenet")
    assert cfg.model.stem == "imagenet"
    block = cfg.reg.dropblock
    assert (block.placement, block.block_size, block.keep_prob, block.schedule, block.seed_region) == \
        ("block", 7, 0.9, "linear", "valid")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("momentum", 0.4, 0.9, 1e-4)
    assert cfg.optim.lr == pytest.approx(0.1 * cfg.trainer.batch_size / 256)  # the official code's scaling rule
    assert (cfg.sched.name, cfg.sched.interval, list(cfg.sched.milestones), cfg.sched.gamma) == \
        ("multistep", "epoch", [125, 200, 250], 0.1)
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.drop_last, cfg.trainer.label_smoothing) == \
        (270, 1024, True, 0.0)
    assert (cfg.dataset.val_size, list(cfg.dataset.augment), list(cfg.dataset.resized_crop_scale)) == \
        (0, ["resized_crop", "flip"], [0.08, 1.0])
    assert (cfg.dataset.image_size, cfg.dataset.resize_size, cfg.dataset.crop_size) == (224, 256, 224)


def test_the_dropblock_experiment_places_dropblock_in_groups_3_and_4() -> None:
    cfg = compose(["experiment=dropblock_resnet50_imagenet", "dataset.root=DIR", "dataset.num_classes=10"])
    blocks = [m for m in build_model(cfg.model, cfg.act, cfg.reg).sublayers() if isinstance(m, DropBlock)]
    # groups 3 (6 bottlenecks) and 4 (3): after each of the 3 conv·BN(·ReLU) and on the shortcut, 4 per block
    assert len(blocks) == 4 * (6 + 3)
    assert {(b.block_size, b.keep_prob, b.schedule) for b in blocks} == {(7, 0.9, "linear")}
    assert sorted({b.drop_scale for b in blocks}) == [0.25, 1.0]  # group 3 at a quarter of the drop rate
    assert [b.drop_scale for b in blocks].count(0.25) == 4 * 6


def test_the_dyrelu_setup_is_mobilenetv2_with_dyrelu_b_over_block_inputs() -> None:
    cfg = compose(["experiment=dyrelu_mobilenetv2_imagenet", "dataset.root=DIR"])
    choices = cfg.hydra.runtime.choices
    assert (choices.model, choices.act, choices.reg, choices.dataset) == \
        ("mobilenetv2", "dyrelu_b_block", "none", "imagenet")
    assert cfg.act._target_ == "regbench.layers.dyrelu.DyReLUB"
    # the authors' DYReLU (microsoft/DynamicHead dyhead/dyrelu.py): the block's input pooled, reduction 4
    assert (cfg.act.hyper_input, cfg.act.reduction) == ("block", 4)
    assert (cfg.model.width, cfg.act.k, cfg.act.lambda_a, cfg.act.lambda_b) == (1.0, 2, 1.0, 0.5)
    assert (list(cfg.act.init_a), list(cfg.act.init_b)) == ([1.0, 0.0], [0.0, 0.0])  # ReLU at θ = 0
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.sched.name) == (0.05, 0.9, 4e-5, "cosine")
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.dataset.val_size, cfg.dataset.image_size) == \
        (300, 256, 0, 224)


@pytest.mark.parametrize(("name", "experiment", "rows"), [
    ("dropblock_imagenet", "dropblock_resnet50_imagenet",
     [("ResNet-50", ("reg=none",), 0.7651), ("+ DropBlock", ("reg=dropblock",), 0.7813)]),
    ("dyrelu_imagenet", "dyrelu_mobilenetv2_imagenet",
     [("ReLU", ("act=relu",), 0.720), ("DY-ReLU-B", ("act=dyrelu_b_block",), 0.762)]),
])
def test_the_articles_hold_the_papers_headline_rows(name: str, experiment: str, rows: list) -> None:
    article = load_article(name)
    assert article.experiment == experiment and article.baseline == rows[0][0]
    assert article.compare == "best_val_acc"  # selected and reported on ImageNet's val, as the papers
    assert [(r.label, r.overrides, r.published["best_val_acc"]) for r in article.rows] == rows
    assert set(article.budgets) == {"full", "quick", "imagenette", "tiny_imagenet"}


@pytest.mark.parametrize(("name", "budget", "dataset", "stem", "lr"), [
    ("dropblock_imagenet", "imagenette", "imagenette", "imagenet", 0.05),
    ("dropblock_imagenet", "tiny_imagenet", "tiny_imagenet", "cifar", 0.05),
    ("dyrelu_imagenet", "imagenette", "imagenette", None, 0.025),
    ("dyrelu_imagenet", "tiny_imagenet", "tiny_imagenet", None, 0.025),
])
def test_the_proxy_budgets_run_the_rows_on_their_dataset(tmp_path: Path, name: str, budget: str, dataset: str,
                                                         stem: str | None, lr: float) -> None:
    for folder in run_folders(tmp_path, sweep_overrides(name, budget, ["dataset.root=DIR"])):
        cfg = load_run(folder).config
        assert cfg.dataset.layout == ("tiny_imagenet" if dataset == "tiny_imagenet" else "imagenet")
        assert cfg.dataset.num_classes == {"imagenette": 10, "tiny_imagenet": 200}[dataset]
        assert OmegaConf.select(cfg, "model.stem") == stem
        assert (cfg.optim.lr, cfg.trainer.batch_size) == (lr, 128)  # the linear rule at batch 128
        assert cfg.dataset.val_size == 0


@pytest.mark.slow
def test_reproduce_dropblock_imagenet_quick_on_an_imagenet_folder(tmp_path: Path) -> None:
    """The user's command on a generated train/ + val/ folder of ImageNet's 1,000 classes: both rows train, land in
    their rows at the quick budget, selected on val/ as the paper, and the table sets the paper's numbers beside."""
    root = imagenet_tree(tmp_path / "imagenet", train=1, val=1, side=24, wnids=[f"n{i:08d}" for i in range(1000)])
    regbench("reproduce", "dropblock_imagenet", "--budget", "quick", f"dataset.root={root}", cwd=tmp_path)
    (sweep,) = (tmp_path / "outputs" / "reproduce" / "dropblock_imagenet-quick").iterdir()
    folders = sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    summaries = [read_json(p / "summary.json") for p in folders]
    assert [(s["status"], s["model"], s["reg"]) for s in summaries] == [("completed", "resnet50", "none"),
                                                                          ("completed", "resnet50", "dropblock")]
    table = (sweep / "table.md").read_text()
    assert "| none | ResNet-50 | quick | test set (as the article) | completed | 1 |" in table
    assert "| dropblock | + DropBlock | quick | test set (as the article) | completed | 1 |" in table
    assert "| 0.7651 |" in table and "| 0.7813 |" in table and "†" not in table
