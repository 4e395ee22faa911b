"""Encoders (backbones) shared by the agents and the SSL methods."""

from ssl_shared.encoders.pixel import PixelEncoder, tie_conv_weights
from ssl_shared.encoders.resnet import TORCHVISION_RESNETS, SmallResNet, TorchvisionResNet

__all__ = ["TORCHVISION_RESNETS", "PixelEncoder", "SmallResNet", "TorchvisionResNet", "tie_conv_weights"]
