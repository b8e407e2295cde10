"""The regularizer league: its run setup (the Cutout paper's protocol on the CIFAR ResNet18), every row composes."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from omegaconf import OmegaConf

from conftest import read_json, regbench, run_folders, write_cifar100_tarball, write_cifar_tarball
from regbench.reg import combination
from regbench.articles import load_article
from regbench.config import compose
from regbench.report.markdown import render_markdown
from regbench.report.plot import draw
from regbench.report.runs import find_runs, load_run
from regbench.report.sections import build_sections
from regbench.errors import UserError
from regbench.reproduce import sweep_overrides
from regbench.train.optim import build_lr


def test_multistep_multiplies_the_lr_by_gamma_after_each_milestone() -> None:
    sched = compose(["sched=multistep"]).sched
    lr = build_lr(sched, 0.1, total_units=200)
    seen = []
    for _ in range(200):
        seen.append(lr.get_lr())
        lr.step()
    expected = [0.1] * 60 + [0.02] * 60 + [0.004] * 40 + [0.0008] * 40
    assert seen == pytest.approx(expected)


@pytest.mark.parametrize("milestones", ["[]", "[60,30]", "[0,10]"])
def test_bad_milestones_are_refused(milestones: str) -> None:
    with pytest.raises(UserError, match="sched.milestones=.* is invalid: it must be a list of increasing integers"):
        compose(["sched=multistep", f"sched.milestones={milestones}"])


def test_the_league_setup_is_the_cutout_papers_protocol() -> None:
    cfg = compose(["experiment=league_resnet18"])
    assert cfg.hydra.runtime.choices.model == "resnet18" and cfg.dataset.augment == ["crop", "flip"]
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("momentum", 0.1, 0.9, 5e-4)
    assert (cfg.sched.name, list(cfg.sched.milestones), cfg.sched.gamma) == ("multistep", [60, 120, 160], 0.2)
    assert (cfg.trainer.epochs, cfg.trainer.batch_size) == (200, 128)


def test_the_league_is_an_article_with_a_table_per_dataset() -> None:
    league = load_article("league")
    assert league.experiment == "league_resnet18" and league.baseline == "none"
    labels = ["none", "dropout2d", "dropblock", "droppath", "cutout", "mixup", "cutmix", "dropblock+cutmix"]
    cifar10, cifar100 = league.parts()
    assert [r.label for r in cifar10.rows] == [r.label for r in cifar100.rows] == labels
    assert cifar10.title.endswith("· CIFAR-10") and cifar100.title.endswith("· CIFAR-100")
    assert cifar100.rows[4].overrides == ("dataset=cifar100", "dataset.data_file=${data_files.cifar100}",
                                          "reg.cutout.size=8", "reg=cutout")  # the Cutout paper's CIFAR-100 size
    # the Cutout paper's Table 1 (ResNet18, test error % → accuracy); no other row has a matching published setup
    published = {(p.title.rsplit(" · ", 1)[1], r.label): r.published for p in (cifar10, cifar100) for r in p.rows
                 if r.published}
    assert published == {("CIFAR-10", "none"): {"final_test_acc": 0.9528},
                         ("CIFAR-10", "cutout"): {"final_test_acc": 0.9601},
                         ("CIFAR-100", "none"): {"final_test_acc": 0.7754},
                         ("CIFAR-100", "cutout"): {"final_test_acc": 0.7804}}


@pytest.mark.slow
def test_each_row_reads_its_datasets_archive_and_composes(tmp_path: Path) -> None:
    folders = run_folders(tmp_path, sweep_overrides("league", "quick", ["data_files.cifar10=/d/c10.tgz"]))
    configs = [load_run(f).config for f in folders]
    assert [(c.dataset.data_file, c.dataset.num_classes) for c in configs] == [("/d/c10.tgz", 10)] * 8 + [
        (None, 100)] * 8
    assert [c.reg.cutout.size for c in configs] == [16] * 8 + [8] * 8
    assert [combination.label(c.reg) for c in configs[:8]] == [r.label for r in load_article("league").rows]


@pytest.mark.slow
def test_the_league_table_compares_each_dataset_with_its_own_none_row(tmp_path: Path) -> None:
    """Run folders of the quick league × 2 seeds in the trainer's format: one table per dataset, each row against
    that dataset's `none`, the Cutout paper's numbers beside none and cutout."""
    folders = run_folders(tmp_path, sweep_overrides("league", "quick", ["seed=0,1"]))
    for i, folder in enumerate(folders):
        dataset, row, seed = divmod(i // 2, 8)[0], (i // 2) % 8, i % 2
        acc = 0.5 - 0.3 * dataset + 0.01 * row + 0.001 * seed   # each row 0.01 above the one before, per dataset
        summary = {"status": "completed", "seed": seed, "final_test_acc": acc, "test_acc": acc, "best_val_acc": acc}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1.0, "val_acc": acc, "train_loss": 1.0}) + "\n")
    sections = build_sections(find_runs([tmp_path]))
    assert [s.title.rsplit(" · ", 1)[1] for s in sections] == ["CIFAR-10", "CIFAR-100"]
    for section in sections:
        assert [r.label for r in section.rows] == [r.label for r in load_article("league").rows]
        assert [r.budget for r in section.rows] == ["quick"] * 8 and all(len(r.runs) == 2 for r in section.rows)
        assert section.rows[0].is_baseline and section.baseline == "none" and section.compare == "final_test_acc"
        assert [round(r.difference.delta, 6) for r in section.rows[1:]] == [0.01 * k for k in range(1, 8)]
    assert [r.published for r in sections[1].rows if r.published] == [{"final_test_acc": 0.7754},
                                                                      {"final_test_acc": 0.7804}]
    table = render_markdown(sections)
    assert "| Δ vs none | 95% CI | p |" in table and "dropblock+cutmix" in table
    fig = draw(find_runs([tmp_path]))  # the plot names each group by its row, and its table's setting
    try:
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
    finally:
        plt.close(fig)
    sizes = {"cifar10": 16, "cifar100": 8}
    assert sorted(legend) == sorted(
        f"{label}, dataset={dataset}" + (f", reg.cutout.size={sizes[dataset]}" if label == "cutout" else "") + " (n=2)"
        for dataset in sizes for label in (r.label for r in load_article("league").rows))


@pytest.mark.slow
def test_reproduce_league_quick_runs_every_row_of_both_tables(tmp_path: Path) -> None:
    """The user's command on archives in the official layouts (MyNet and 8 images for speed): 16 jobs, each reading
    its table's archive, and one table per dataset with every row labelled."""
    c10 = write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz", n_train=100, n_test=20)
    c100 = write_cifar100_tarball(tmp_path / "cifar-100-python.tar.gz", n_train=200, n_test=20)
    regbench("reproduce", "league", "--budget", "quick", f"data_files.cifar10={c10}", f"data_files.cifar100={c100}",
             "model=mynet", "dataset.limit.train=8", "dataset.limit.val=8", "dataset.limit.test=8",
             "trainer.batch_size=8", cwd=tmp_path)
    [sweep] = (tmp_path / "outputs" / "reproduce" / "league-quick").iterdir()
    jobs = [sweep / str(i) for i in range(16)]
    assert all(read_json(job / "summary.json")["status"] == "completed" for job in jobs)
    data = [(OmegaConf.load(job / ".hydra" / "config.yaml").dataset.data_file,
             read_json(job / "summary.json")["dataset"]) for job in jobs]
    assert data == [(str(c10), "cifar10")] * 8 + [(str(c100), "cifar100")] * 8
    table = (sweep / "table.md").read_text()
    assert [line.rsplit(" · ", 1)[1] for line in table.splitlines() if line.startswith("## ")] == ["CIFAR-10",
                                                                                                "CIFAR-100"]
    labels = [r.label for r in load_article("league").rows]
    for part in table.split("## ")[1:]:
        header, *rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in part.splitlines()
                         if line.startswith("| ")]
        assert [row[header.index("row")] for row in rows] == [f"{label} †" for label in labels]  # † model=mynet
        assert header[-8:-4] == ["Δ vs none", "95% CI", "p", "p (Holm)"] and rows[0][-8] == "baseline"


def test_the_cpu_league_is_mynet_on_held_out_val_with_every_regularizer_but_droppath() -> None:
    cfg = compose(["experiment=league_mynet"])
    assert cfg.hydra.runtime.choices.model == "mynet" and cfg.dataset.val_size == 5000 and cfg.dataset.augment == []
    assert (cfg.sched.name, cfg.sched.eta_min, cfg.trainer.epochs) == ("cosine", 0.0, 8)
    league = load_article("league_cpu")
    assert league.experiment == "league_mynet" and league.compare == "test_acc" and league.baseline == "none"
    assert [r.label for r in league.rows] == ["none", "dropout", "dropout2d", "dropblock", "cutout", "mixup", "cutmix"]
    assert league.budgets["full"].seeds == (0, 1, 2) and not league.budgets["full"].overrides


@pytest.mark.slow
def test_the_cpu_league_table_shows_the_dropout_rate_only_where_a_row_uses_it(tmp_path: Path) -> None:
    """reg.p differs between rows, so it is a column; the rows without dropout show it as absent (—), not as the
    unused 0.1 their configs carry."""
    folders = run_folders(tmp_path, sweep_overrides("league_cpu", "quick", ["seed=0,1"]))
    for i, folder in enumerate(folders):
        acc = 0.6 + 0.01 * (i // 2)
        summary = {"status": "completed", "seed": i % 2, "test_acc": acc, "best_val_acc": acc, "test_ece": 0.1,
                   "test_nll": 1.0}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1.0, "val_acc": acc}) + "\n")
    [section] = build_sections(find_runs([tmp_path]))
    assert [r.label for r in section.rows] == [r.label for r in load_article("league_cpu").rows]
    table = render_markdown([section])
    header, *rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("| ")]
    rows = [r for r in rows if not set(r[0]) <= {"-"}]
    assert [(r[header.index("row")], r[header.index("reg.p")]) for r in rows] == [
        ("none", "—"), ("dropout", "0.5"), ("dropout2d", "0.1"), ("dropblock", "—"), ("cutout", "—"), ("mixup", "—"),
        ("cutmix", "—")]
