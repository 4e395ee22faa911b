"""ResNet backbones for 32-128 px images: a small residual network and a torchvision adapter.

Both map ``(B, C, H, W)`` float images to ``(B, feature_dim)`` and expose ``feature_dim``.
No pretrained weights are ever loaded (nothing is downloaded).
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (projected) shortcut, then ReLU (He et al. 2016)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A CIFAR-style ResNet: a 3x3 stem, one basic block per stage (stride 2 after the first),
    global average pooling and a linear layer to ``feature_dim``."""

    def __init__(self, in_channels: int = 3, feature_dim: int = 128, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        if in_channels < 1 or feature_dim < 1 or not widths:
            raise ValueError(
                f"bad SmallResNet sizes: in_channels={in_channels}, feature_dim={feature_dim}, widths={widths}"
            )
        self.feature_dim = feature_dim
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        stages, prev = [], widths[0]
        for i, w in enumerate(widths):
            stages.append(BasicBlock(prev, w, stride=1 if i == 0 else 2))
            prev = w
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(prev, feature_dim)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W) images, got {tuple(x.shape)}")
        return self.stages(self.stem(x.float()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.feature_map(x).mean(dim=(2, 3)))


#: The torchvision ResNets :class:`TorchvisionResNet` builds (He et al. 2016, arXiv 1512.03385).
TORCHVISION_RESNETS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet (``resnet18`` ... ``resnet152``), randomly initialised, with its stem
    adapted to ``in_channels`` and its classifier replaced by a linear layer to ``feature_dim``."""

    def __init__(self, name: str = "resnet18", in_channels: int = 3, feature_dim: int = 512) -> None:
        super().__init__()
        if name not in TORCHVISION_RESNETS:
            raise ValueError(f"unknown torchvision resnet {name!r}; allowed: {TORCHVISION_RESNETS}")
        import torchvision  # imported here: it pulls in torch._dynamo, which SmallResNet runs never need

        net = getattr(torchvision.models, name)(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        net.fc = nn.Linear(net.fc.in_features, feature_dim)
        self.net = net
        self.feature_dim = feature_dim
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W) images, got {tuple(x.shape)}")
        return self.net(x.float())
