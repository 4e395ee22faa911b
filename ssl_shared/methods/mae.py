"""Masked autoencoder (He et al. 2022, CVPR) with a convolutional encoder.

The image is cut into ``p x p`` patches; a random ``mask_ratio`` of them (exactly
``N - int(N (1 - mask_ratio))`` per image, by sorting uniform noise as in the paper) is replaced by a
learned per-channel mask value; the backbone encodes the masked image and a decoder predicts all
pixels. The loss counts the masked patches only:

    t_n  = patch n of x, optionally normalised by its own mean and std (``normalize_target``)
    L    = sum_n m_n * mean_pixels (x^_n - t_n)^2 / sum_n m_n          (m_n = 1 if patch n is masked)

The paper's ViT encoder sees only the visible patches; with a convolutional backbone the masked
patches are filled instead (as in the convolutional MAE variants), which keeps the method usable
with any backbone of the suite. Defaults: ratio 0.75 and normalised-pixel targets (paper, Table 1d).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod, check_image_shape
from ssl_shared.methods.decoder import ConvDecoder, backbone_in_channels


@dataclass
class MAEConfig:
    # He et al. 2022: mask ratio 0.75, normalised pixel targets; patch 16 on 224 px images (a 14x14
    # grid) -- 4 px patches give an 8x8 grid on 32 px images.
    patch_size: int = 4
    mask_ratio: float = 0.75
    normalize_target: bool = True
    decoder_channels: int = 64
    in_channels: int | None = None

    def __post_init__(self) -> None:
        if self.patch_size < 1 or not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"need patch_size >= 1 and mask_ratio in (0, 1), got {self.patch_size}, {self.mask_ratio}")


def patchify(x: Tensor, patch: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, N, C p p)`` with patches in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def random_patch_mask(
    batch: int, num_patches: int, mask_ratio: float, generator: torch.Generator | None = None, device=None
) -> Tensor:
    """``(B, N)`` float, 1 for masked patches; exactly ``N - int(N (1 - mask_ratio))`` per row."""
    keep = int(num_patches * (1 - mask_ratio))
    noise = torch.rand(batch, num_patches, generator=generator, device=device)
    order = noise.argsort(dim=1)
    mask = torch.ones(batch, num_patches, device=device)
    mask.scatter_(1, order[:, :keep], 0.0)
    return mask


def expand_patch_mask(mask: Tensor, grid: tuple[int, int], patch: int) -> Tensor:
    """``(B, N)`` patch mask -> ``(B, 1, H, W)`` pixel mask."""
    b = mask.shape[0]
    m = mask.view(b, 1, grid[0], 1, grid[1], 1).expand(-1, -1, -1, patch, -1, patch)
    return m.reshape(b, 1, grid[0] * patch, grid[1] * patch)


def masked_patch_loss(pred: Tensor, target: Tensor, mask: Tensor, normalize_target: bool) -> Tensor:
    """Mean squared error per patch, averaged over masked patches; inputs ``(B, N, D)``, mask ``(B, N)``."""
    if normalize_target:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (pred - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


class MaskedAutoencoder(SSLMethod):
    name: ClassVar[str] = "mae"
    family: ClassVar[str] = "self-prediction"
    citation: ClassVar[str] = "He et al. 2022, arXiv 2111.06377"
    config_class: ClassVar[type] = MAEConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: MAEConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        channels = backbone_in_channels(backbone, self.config.in_channels)
        self.mask_value = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.decoder = ConvDecoder(feature_dim, channels, self.config.decoder_channels)

    def validate_input(self, image_shape, num_frames=None) -> None:
        _, h, w = check_image_shape(self.name, image_shape)
        p = self.config.patch_size
        if h % p or w % p or (h // p) * (w // p) < 2:
            raise ValueError(f"MAE: image {image_shape} must be divisible into at least 2 patches of {p}x{p}")

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        b, _, h, w = x.shape
        p = self.config.patch_size
        self.validate_input(tuple(x.shape[1:]))
        grid = (h // p, w // p)
        mask = random_patch_mask(b, grid[0] * grid[1], self.config.mask_ratio, device=x.device)
        hole = expand_patch_mask(mask, grid, p)
        masked = x * (1 - hole) + self.mask_value * hole
        recon = self.decoder(self.encode(masked), (h, w))
        loss = masked_patch_loss(patchify(recon, p), patchify(x, p), mask, self.config.normalize_target)
        return loss, {"loss": loss.item(), "masked_fraction": mask.mean().item()}
