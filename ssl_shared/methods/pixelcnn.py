"""PixelCNN as an autoregressive pretext task (van den Oord et al. 2016, ICML "Pixel Recurrent Neural
Networks"; the auto-encoder form of van den Oord et al. 2016, NeurIPS "Conditional Image Generation
with PixelCNN Decoders", sec. 3.4).

Pixels are modelled in raster order, colour channels R -> G -> B within a pixel:

    p(x | h) = prod_i prod_c p(x_{i,c} | x_{<i}, x_{i,<c}, h),     h = f(x) the backbone's code
    L = -1/(B C H W) sum log p(x_{i,c} | ...)                      (``levels``-way softmax, 256 in the paper)

Causality comes from masked convolutions: the kernel sees rows above and pixels to the left; at the
centre pixel an output channel of colour group ``g_out`` sees input channels of group ``g_in`` with
``g_in < g_out`` (mask type A, first layer) or ``g_in <= g_out`` (type B, later layers). The code
``h`` enters every layer as a per-channel bias (global conditioning), so the backbone learns a
compressed description of the image that the autoregressive decoder needs; ``h`` is the
representation that is probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.decoder import backbone_in_channels


@dataclass
class PixelCNNConfig:
    # van den Oord et al. 2016: 7x7 type-A first layer, 3x3 type-B residual layers (15 in the paper,
    # fewer here for CPU budgets), 256-way softmax per sub-pixel.
    levels: int = 256
    hidden_channels: int = 64
    num_layers: int = 5
    in_channels: int | None = None

    def __post_init__(self) -> None:
        if self.levels < 2 or self.hidden_channels < 1 or self.num_layers < 0:
            raise ValueError(
                f"need levels >= 2, hidden_channels >= 1, num_layers >= 0, got {self.levels}, "
                f"{self.hidden_channels}, {self.num_layers}"
            )


def channel_groups(num_channels: int, groups: int) -> Tensor:
    """Colour group of each of ``num_channels`` channels split into ``groups`` contiguous blocks."""
    return torch.arange(num_channels) * groups // num_channels


class MaskedConv2d(nn.Conv2d):
    """A ``k x k`` convolution whose kernel is masked for raster-scan and colour-order causality."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str, groups_rgb: int) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        c = kernel_size // 2
        mask = torch.ones(out_channels, in_channels, kernel_size, kernel_size)
        mask[:, :, c, c + 1 :] = 0.0
        mask[:, :, c + 1 :, :] = 0.0
        g_out = channel_groups(out_channels, groups_rgb).view(-1, 1)
        g_in = channel_groups(in_channels, groups_rgb).view(1, -1)
        allowed = (g_in < g_out) if mask_type == "A" else (g_in <= g_out)
        mask[:, :, c, c] = allowed.float()
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ConditionalPixelCNN(nn.Module):
    """Masked-conv stack: ``(B, C, H, W)`` in ``[-1, 1]`` (+ code) -> ``(B, C, levels, H, W)`` logits."""

    def __init__(self, channels: int, levels: int, hidden: int, num_layers: int, code_dim: int | None) -> None:
        super().__init__()
        self.channels, self.levels = channels, levels
        hidden = max(hidden - hidden % channels, channels)  # divisible into colour groups
        self.first = MaskedConv2d(channels, hidden, 7, "A", channels)
        self.layers = nn.ModuleList(MaskedConv2d(hidden, hidden, 3, "B", channels) for _ in range(num_layers))
        self.head1 = MaskedConv2d(hidden, hidden, 1, "B", channels)
        self.head2 = MaskedConv2d(hidden, channels * levels, 1, "B", channels)
        n_cond = num_layers + 1
        self.condition = nn.Linear(code_dim, hidden * n_cond) if code_dim is not None else None
        self.hidden = hidden

    def forward(self, x: Tensor, code: Tensor | None = None) -> Tensor:
        biases: list[Tensor | int] = [0] * (len(self.layers) + 1)
        if self.condition is not None and code is not None:
            biases = list(self.condition(code).view(code.shape[0], -1, self.hidden, 1, 1).unbind(1))
        h = self.first(x) + biases[0]
        for layer, bias in zip(self.layers, biases[1:]):
            h = h + layer(F.relu(h)) + bias
        out = self.head2(F.relu(self.head1(F.relu(h))))
        b, _, height, width = out.shape
        return out.view(b, self.channels, self.levels, height, width)


def quantize(x: Tensor, levels: int) -> Tensor:
    """Float pixels in ``[0, 1]`` -> long values in ``[0, levels - 1]`` (round to nearest)."""
    return (x.clamp(0.0, 1.0) * (levels - 1)).round().long()


class PixelCNN(SSLMethod):
    name: ClassVar[str] = "pixelcnn"
    family: ClassVar[str] = "self-prediction (autoregressive)"
    citation: ClassVar[str] = "van den Oord et al. 2016, arXiv 1601.06759 and arXiv 1606.05328"
    config_class: ClassVar[type] = PixelCNNConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: PixelCNNConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        channels = backbone_in_channels(backbone, self.config.in_channels)
        c = self.config
        self.pixelcnn = ConditionalPixelCNN(channels, c.levels, c.hidden_channels, c.num_layers, feature_dim)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        values = quantize(x, self.config.levels)
        inputs = values.float() / (self.config.levels - 1) * 2 - 1
        logits = self.pixelcnn(inputs, self.encode(x))
        loss = F.cross_entropy(logits.transpose(1, 2), values)
        bits = loss.item() / torch.log(torch.tensor(2.0)).item()
        return loss, {"loss": loss.item(), "bits_per_dim": bits}
