"""Learning to count (Noroozi, Pirsiavash & Favaro 2017, ICCV): visual-primitive counts are additive.

A counting network ``c(.) = ReLU(W f(.))`` maps an image to non-negative counts. The counts of the four
2x2 tiles ``T_j(x)`` must add up to the counts of the 2x-downsampled image ``D(x)``; to rule out the
trivial solution ``c = 0`` the counts of another image ``y`` must stay away (margin ``M``):

    t      = sum_{j=1..4} c(T_j(x))
    L      = || c(D(x)) - t ||^2 + max(0, M - || c(D(y)) - t ||^2)

Here ``y`` is the next image of the batch (the batch rolled by one). Paper: 1000 counts, M = 10.
The squared norms sum over all counts, so the loss starts in the hundreds: with SmallResNet-128,
batch 32, plain SGD at lr 0.01 diverged in our check while Adam at 1e-3 did not. If the counts
shrink towards 0 the loss tends to ``M`` (the trivial solution the contrastive term penalises).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod, check_image_shape


@dataclass
class CountingConfig:
    # Noroozi et al. 2017: 1000-dimensional counting vector, margin M = 10.
    num_counts: int = 1000
    margin: float = 10.0

    def __post_init__(self) -> None:
        if self.num_counts < 1 or self.margin < 0:
            raise ValueError(f"need num_counts >= 1 and margin >= 0, got {self.num_counts}, {self.margin}")


def quadrant_tiles(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, 4, C, H/2, W/2)``: top-left, top-right, bottom-left, bottom-right."""
    b, c, h, w = x.shape
    tiles = x.view(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5)
    return tiles.reshape(b, 4, c, h // 2, w // 2)


def downsample2(x: Tensor) -> Tensor:
    """2x bilinear (antialiased) downsampling to the tiles' size."""
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)


def counting_loss(counts_down: Tensor, counts_tiles: Tensor, counts_other: Tensor, margin: float) -> Tensor:
    """Batch mean of ``||c_D - t||^2 + max(0, M - ||c_D(y) - t||^2)``, ``t = counts_tiles.sum(1)``.

    ``counts_down``, ``counts_other``: ``(B, K)``; ``counts_tiles``: ``(B, 4, K)``.
    """
    total = counts_tiles.sum(dim=1)
    positive = (counts_down - total).pow(2).sum(dim=1)
    negative = F.relu(margin - (counts_other - total).pow(2).sum(dim=1))
    return (positive + negative).mean()


class Counting(SSLMethod):
    name: ClassVar[str] = "counting"
    family: ClassVar[str] = "innate relationship"
    citation: ClassVar[str] = "Noroozi, Pirsiavash & Favaro 2017, arXiv 1708.06734"
    config_class: ClassVar[type] = CountingConfig
    min_batch_size: ClassVar[int] = 2

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: CountingConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        self.counter = nn.Linear(feature_dim, self.config.num_counts)

    def counts(self, x: Tensor) -> Tensor:
        return F.relu(self.counter(self.encode(x)))

    def validate_input(self, image_shape, num_frames=None) -> None:
        c, h, w = check_image_shape(self.name, image_shape)
        if h % 2 or w % 2:
            raise ValueError(f"counting splits images into 2x2 tiles: H and W must be even, got {h}x{w}")
        self.check_backbone_accepts((c, h // 2, w // 2), "half-size tiles")

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        if x.shape[0] < 2:
            raise ValueError("counting needs a batch of at least 2 images (another image is the negative)")
        b = x.shape[0]
        tiles = quadrant_tiles(x)
        down = downsample2(x)
        all_counts = self.counts(torch.cat([tiles.flatten(0, 1), down]))
        counts_tiles = all_counts[: 4 * b].view(b, 4, -1)
        counts_down = all_counts[4 * b :]
        counts_other = counts_down.roll(1, dims=0)
        loss = counting_loss(counts_down, counts_tiles, counts_other, self.config.margin)
        return loss, {"loss": loss.item(), "mean_count": counts_down.mean().item()}
