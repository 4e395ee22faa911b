"""Contrastive predictive coding on images (van den Oord, Li & Vinyals 2018; Henaff et al. 2020, CPC v2).

The image is cut into a ``G x G`` grid of overlapping patches (patch ``H/4``, stride ``H/8``: a 7x7 grid),
every patch is encoded by the backbone, ``z_{i,j} = f(x_{i,j})``. A row-causal context network (a
stack of masked 3x3 convolutions whose kernels see only the current and earlier rows, PixelCNN style)
summarizes everything above and on row ``i`` into ``c_{i,j}``. For each step ``k = 1..K`` a linear map
predicts the patch ``k`` rows below, scored by InfoNCE against the other targets of the batch:

    z^_{i+k,j} = W_k c_{i,j}
    L = 1/K sum_k InfoNCE(z^_{i+k,j}, z_{i+k,j}; negatives = all other targets of step k)   (dot critic)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses import info_nce_loss
from ssl_shared.methods.base import SSLMethod, check_image_shape
from ssl_shared.methods.patches import overlapping_grid


@dataclass
class CPCConfig:
    # van den Oord et al. 2018 / Henaff et al. 2020: 64 px patches with stride 32 on 256 px images (a
    # 7x7 grid), predictions up to 5 rows ahead (CPC v1), dot-product critic.
    patch_fraction: float = 0.25
    stride_fraction: float = 0.125
    prediction_steps: int = 5
    context_layers: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.stride_fraction <= self.patch_fraction <= 1.0:
            raise ValueError(
                f"need 0 < stride_fraction <= patch_fraction <= 1, got {self.stride_fraction}, {self.patch_fraction}"
            )
        if self.prediction_steps < 1 or self.context_layers < 1:
            raise ValueError("prediction_steps and context_layers must be >= 1")


class RowCausalConv(nn.Conv2d):
    """3x3 convolution whose kernel row below the centre is zero: output row i sees input rows <= i."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, 3, padding=1)
        mask = torch.ones_like(self.weight)
        mask[:, :, 2, :] = 0.0
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=1)


class RowContext(nn.Module):
    """``(B, D, G, G)`` patch codes -> context of the same shape; row i depends on rows <= i only."""

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(RowCausalConv(channels) for _ in range(layers))

    def forward(self, z: Tensor) -> Tensor:
        h = z
        for conv in self.convs:
            h = h + conv(F.relu(h))
        return h


def patch_geometry(image_hw: tuple[int, int], config: CPCConfig) -> tuple[int, int, int]:
    """``(patch, stride, grid)`` for square-ish images: grid = (side - patch) // stride + 1."""
    side = min(image_hw)
    patch = max(1, int(round(side * config.patch_fraction)))
    stride = max(1, int(round(side * config.stride_fraction)))
    return patch, stride, (side - patch) // stride + 1


def prediction_pairs(grid: int, step: int) -> tuple[Tensor, Tensor]:
    """Flat grid indices ``(context, target)`` with target exactly ``step`` rows below the context."""
    rows = torch.arange(grid - step).repeat_interleave(grid)
    cols = torch.arange(grid).repeat(grid - step)
    return rows * grid + cols, (rows + step) * grid + cols


class CPC(SSLMethod):
    name: ClassVar[str] = "cpc"
    family: ClassVar[str] = "contrastive (predictive)"
    citation: ClassVar[str] = "van den Oord, Li & Vinyals 2018, arXiv 1807.03748; Henaff et al. 2020, arXiv 1905.09272"
    config_class: ClassVar[type] = CPCConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: CPCConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        c = self.config
        self.context = RowContext(feature_dim, c.context_layers)
        self.predictors = nn.ModuleList(
            nn.Linear(feature_dim, feature_dim, bias=False) for _ in range(c.prediction_steps)
        )

    def validate_input(self, image_shape, num_frames=None) -> None:
        ch, h, w = check_image_shape(self.name, image_shape)
        patch, _, grid = patch_geometry((h, w), self.config)
        if grid <= self.config.prediction_steps:
            raise ValueError(
                f"CPC: a {grid}x{grid} patch grid cannot predict {self.config.prediction_steps} rows ahead; "
                "use larger images or fewer prediction_steps"
            )
        self.check_backbone_accepts((ch, patch, patch), "CPC patches")

    def patch_codes(self, x: Tensor) -> Tensor:
        """``(B, D, G, G)`` backbone codes of the patch grid (on the central square of the image)."""
        side = min(x.shape[-2:])
        top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
        x = x[..., top : top + side, left : left + side]
        patch, stride, grid = patch_geometry((side, side), self.config)
        patches = overlapping_grid(x, patch, stride)[:, :grid, :grid]
        b = x.shape[0]
        z = self.encode(patches.flatten(0, 2)).view(b, grid, grid, -1)
        return z.permute(0, 3, 1, 2)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        z = self.patch_codes(x)
        b, d, grid, _ = z.shape
        if grid <= self.config.prediction_steps:
            raise ValueError(f"CPC: grid {grid} too small for {self.config.prediction_steps} prediction steps")
        ctx = self.context(z).flatten(2).transpose(1, 2)  # (B, G*G, D)
        targets = z.flatten(2).transpose(1, 2)
        losses = []
        for k, predictor in enumerate(self.predictors, start=1):
            src, dst = prediction_pairs(grid, k)
            query = predictor(ctx[:, src.to(x.device)]).reshape(-1, d)
            key = targets[:, dst.to(x.device)].reshape(-1, d)
            losses.append(info_nce_loss(query, key, critic="dot", temperature=1.0))
        loss = torch.stack(losses).mean()
        return loss, {"loss": loss.item()}
