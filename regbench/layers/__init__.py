"""Activation layers, usable on their own as paddle.nn.Layers (the regularizers are in regbench.reg)."""
from regbench.layers.dyrelu import DyReLUA, DyReLUB, DyReLUC
from regbench.layers.relu import ReLU

__all__ = ["DyReLUA", "DyReLUB", "DyReLUC", "ReLU"]
