"""The articles' models. Each one calls the factories it is given at the places its article marks."""
from __future__ import annotations

import logging
from typing import Any, Callable

import paddle.nn as nn
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from regbench import regs
from regbench.errors import UserError

log = logging.getLogger("regbench")
PLACES = ("conv", "fc", "block", "residual")


def _identity(*args: Any, **kwargs: Any) -> nn.Layer:
    return nn.Identity()


def build_model(model: DictConfig, act: DictConfig, reg: DictConfig) -> nn.Layer:
    """Instantiate `model` with the activation factory and the regularizer factories (null places get Identity)."""
    regs.check(reg)  # a sweep's later jobs are composed by Hydra alone: check each one's combination
    used: set[str] = set()

    def place(kind: str) -> Callable[..., nn.Layer]:
        factory = instantiate(reg[kind])

        def make(*args: Any, **kwargs: Any) -> nn.Layer:
            layer = factory(*args, **kwargs)
            if not isinstance(layer, nn.Identity):  # a factory may leave a place empty (DropBlock's placement)
                used.add(kind)
            return layer

        return make

    given = [kind for kind in PLACES if reg.get(kind) is not None]
    factories = {f"{kind}_reg": place(kind) if kind in given else _identity for kind in PLACES}
    try:
        built = instantiate(model, act=instantiate(act), **factories)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise
    if act.get("hyper_input") == "block" and not any(getattr(m, "hyper_input", None) == "block"
                                                     for m in built.sublayers()):
        log.warning("act.hyper_input=block but %s gives its activations no block input: each DY-ReLU pools the "
                    "tensor it activates, as with act.hyper_input=self", model._target_)
    for kind in given:
        if kind not in used:
            log.warning("reg.%s is set but %s has no %s places for it: it has no effect", kind, model._target_, kind)
    return built
