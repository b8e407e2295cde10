"""Optimizers and learning-rate schedules from the `optim` and `sched` config groups."""
from __future__ import annotations

import paddle
from omegaconf import DictConfig

from regbench.errors import UserError


def build_lr(sched: DictConfig, lr: float, total_units: int) -> paddle.optimizer.lr.LRScheduler:
    """The lr schedule; `total_units` is the run's length in the schedule's interval (steps or epochs)."""
    if sched.name == "constant":
        return paddle.optimizer.lr.LambdaDecay(lr, lambda _: 1.0)
    if sched.name == "step":
        return paddle.optimizer.lr.StepDecay(lr, step_size=sched.step_size, gamma=sched.gamma)
    if sched.name == "cosine":
        return paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=sched.T_max or total_units, eta_min=sched.eta_min)
    if sched.name == "multistep":
        return paddle.optimizer.lr.MultiStepDecay(lr, milestones=list(sched.milestones), gamma=sched.gamma)
    raise UserError(f"unknown sched.name {sched.name!r}; choose one of: constant, step, cosine, multistep")


def build_optimizer(optim: DictConfig, lr: paddle.optimizer.lr.LRScheduler,
                    parameters: list[paddle.Tensor]) -> paddle.optimizer.Optimizer:
    """The optimizer named by optim.name (weight_decay is a coupled L2 penalty, as in the articles)."""
    common = dict(learning_rate=lr, parameters=parameters, weight_decay=optim.weight_decay or None)
    if optim.name == "sgd":
        return paddle.optimizer.SGD(**common)
    if optim.name == "momentum":
        return paddle.optimizer.Momentum(momentum=optim.momentum, **common)
    if optim.name == "adam":
        return paddle.optimizer.Adam(**common)
    raise UserError(f"unknown optim.name {optim.name!r}; choose one of: sgd, momentum, adam")
