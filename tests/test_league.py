"""The regularizer league: its run setup (the Cutout paper's protocol on the CIFAR ResNet18), every row composes."""
from __future__ import annotations

import pytest

from regbench.config import compose
from regbench.errors import UserError
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
