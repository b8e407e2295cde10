"""Regularization and activation layers, usable on their own as paddle.nn.Layers."""
from regbench.layers.dropblock import DropBlock
from regbench.layers.dyrelu import DyReLUA, DyReLUB, DyReLUC
from regbench.layers.relu import ReLU

__all__ = ["DropBlock", "DyReLUA", "DyReLUB", "DyReLUC", "ReLU"]
