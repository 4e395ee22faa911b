"""A small size-agnostic convolutional decoder: a feature vector -> an image-shaped map.

Used by the self-prediction methods (autoencoders, VAE, context encoder, colorization, split-brain,
MAE) to turn the backbone's ``(B, feature_dim)`` code into ``(B, out_channels, H, W)``:

    Linear -> (hidden, 4, 4) -> num_upsample x [upsample x2, conv3x3, ReLU] -> conv3x3
    -> bilinear resize to the requested (H, W) when it differs from 4 * 2^num_upsample

The output size is chosen per call, so a method does not need to know the image size when it is
built (the trainer builds methods before it sees data).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.encoders import PixelEncoder

_START = 4


class ConvDecoder(nn.Module):
    """Decode ``(B, in_dim)`` to ``(B, out_channels, H, W)`` (no output activation)."""

    def __init__(self, in_dim: int, out_channels: int, hidden_channels: int = 64, num_upsample: int = 3) -> None:
        super().__init__()
        if in_dim < 1 or out_channels < 1 or hidden_channels < 1 or num_upsample < 0:
            raise ValueError(
                f"bad ConvDecoder sizes: in_dim={in_dim}, out_channels={out_channels}, "
                f"hidden_channels={hidden_channels}, num_upsample={num_upsample}"
            )
        self.hidden_channels = hidden_channels
        self.fc = nn.Linear(in_dim, hidden_channels * _START * _START)
        blocks: list[nn.Module] = []
        for _ in range(num_upsample):
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(hidden_channels, hidden_channels, 3, 1, 1),
            ]
            blocks.append(nn.ReLU())
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(hidden_channels, out_channels, 3, 1, 1)

    def forward(self, code: Tensor, out_size: tuple[int, int]) -> Tensor:
        if code.ndim != 2:
            raise ValueError(f"code must be (B, D), got shape {tuple(code.shape)}")
        x = F.relu(self.fc(code)).view(code.shape[0], self.hidden_channels, _START, _START)
        x = self.out(self.blocks(x))
        if tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(x, size=tuple(out_size), mode="bilinear", align_corners=False)
        return x


def backbone_in_channels(backbone: nn.Module, override: int | None = None) -> int:
    """Image channels the backbone reads: ``override`` if given, else its ``in_channels`` attribute
    (``SmallResNet``, ``TorchvisionResNet``) or ``obs_shape[0]`` (``PixelEncoder``)."""
    if override is not None:
        if override < 1:
            raise ValueError(f"in_channels must be >= 1, got {override}")
        return override
    if isinstance(backbone, PixelEncoder):
        return int(backbone.obs_shape[0])
    channels = getattr(backbone, "in_channels", None)
    if channels is None:
        raise ValueError(
            f"cannot tell how many image channels {type(backbone).__name__} reads; "
            "give the method config in_channels=..."
        )
    return int(channels)
