"""The articles' models. Each one asks the regularizer places it is given (regbench.reg.places) for the layers to put
at the places its article marks."""
from __future__ import annotations

import logging

import paddle.nn as nn
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from regbench.errors import UserError
from regbench.reg import combination
from regbench.reg.places import Places

log = logging.getLogger("regbench")


def build_model(model: DictConfig, act: DictConfig, reg: DictConfig) -> nn.Layer:
    """Instantiate `model` with the activation factory and the places of the regularizers in `reg`."""
    combination.check(reg)  # a sweep's later jobs are composed by Hydra alone: check each one's combination
    places = Places.of(reg)
    try:
        built = instantiate(model, act=instantiate(act), places=places)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise
    if act.get("hyper_input") == "block" and not any(getattr(m, "hyper_input", None) == "block"
                                                     for m in built.sublayers()):
        log.warning("act.hyper_input=block but %s gives its activations no block input: each DY-ReLU pools the "
                    "tensor it activates, as with act.hyper_input=self", model._target_)
    for kind in places.given:
        if kind not in places.filled:
            log.warning("reg.%s is set but %s has no %s places for it: it has no effect", kind, model._target_, kind)
    return built
