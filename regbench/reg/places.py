"""The places a model calls a regularizer at (conf/reg/_base.yaml's conv, fc, block and residual): one Places object
that every model receives and asks for the layer at each of its places."""
from __future__ import annotations

from typing import Callable

import paddle.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig

Factory = Callable[..., nn.Layer]
KINDS = ("conv", "fc", "block", "residual")


class Places:
    """The layers a model inserts: conv() after each conv activation, fc() after each hidden fc activation,
    block(drop_scale, site) at its DropBlock places (site "stage" or "block"), residual(drop_scale) on each residual
    branch before the sum (drop_scale l/L for block l of L). Each is Identity where the place is empty."""

    def __init__(self, conv: Factory | None = None, fc: Factory | None = None, block: Factory | None = None,
                 residual: Factory | None = None) -> None:
        self.factories = dict(conv=conv, fc=fc, block=block, residual=residual)
        self.filled: set[str] = set()  # the kinds that made a layer (a factory may leave a place empty: Identity)

    @classmethod
    def of(cls, reg: DictConfig) -> Places:
        """The places the composed `reg` node fills, each by the factory it gives."""
        return cls(**{kind: instantiate(reg[kind]) for kind in KINDS if reg.get(kind) is not None})

    @property
    def given(self) -> list[str]:
        """The kinds that have a factory."""
        return [kind for kind, factory in self.factories.items() if factory is not None]

    def conv(self) -> nn.Layer:
        return self._make("conv")

    def fc(self) -> nn.Layer:
        return self._make("fc")

    def block(self, drop_scale: float, site: str) -> nn.Layer:
        return self._make("block", drop_scale=drop_scale, site=site)

    def residual(self, drop_scale: float) -> nn.Layer:
        return self._make("residual", drop_scale=drop_scale)

    def _make(self, kind: str, **kwargs: float | str) -> nn.Layer:
        factory = self.factories[kind]
        if factory is None:
            return nn.Identity()
        layer = factory(**kwargs)
        if not isinstance(layer, nn.Identity):
            self.filled.add(kind)
        return layer
