"""Encoders (backbones) shared by the agents and the SSL methods."""

from ssl_shared.encoders.pixel import PixelEncoder, tie_conv_weights
from ssl_shared.encoders.resnet import SmallResNet, TorchvisionResNet

__all__ = ["PixelEncoder", "SmallResNet", "TorchvisionResNet", "tie_conv_weights"]
