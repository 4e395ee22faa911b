"""Context encoder: inpainting as a pretext task (Pathak et al. 2016, CVPR).

A region of the image is removed (``hole = 1`` there, filled with the mean pixel value); the backbone
encodes the rest and a decoder paints the whole image. With ``M = 1 - hole``:

    x^     = g(f(M * x + hole * fill))
    L_rec  = || hole * (x - x^) ||^2 / (number of removed values)
    L_adv  = -log D(M * x + hole * x^)                          (generator side, non-saturating)
    L_D    = -log D(x) - log(1 - D(M * x + hole * sg(x^)))     (discriminator side)
    L      = lambda_rec * L_rec + lambda_adv * L_adv + L_D      (Pathak: lambda_rec 0.999, lambda_adv 0.001)

``L_D`` only reaches the discriminator (the completion is detached) and ``L_adv`` only reaches the
generator (the discriminator's parameters are detached for it), so one optimizer trains both.

Masks (``hole``), for ``H x W`` images:

* ``central``: the central ``H/2 x W/2`` square (a quarter of the image);
* ``random_block``: ``num_blocks`` squares of side ``H/4`` at random places, possibly overlapping, so
  at most a quarter of the image;
* ``random_region``: Pathak use PASCAL segmentation shapes; without annotations we take the
  ``H W / 4`` pixels with the highest values of a smoothed random field (blob-like regions,
  exactly a quarter of the image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.decoder import ConvDecoder, backbone_in_channels

MASKS = ("central", "random_block", "random_region")


@dataclass
class ContextEncoderConfig:
    # Pathak et al. 2016: joint loss weights 0.999 (reconstruction) and 0.001 (adversarial).
    mask: str = "central"
    reconstruction_weight: float = 0.999
    adversarial_weight: float = 0.001
    num_blocks: int = 4
    region_smoothing: int = 5
    decoder_channels: int = 64
    discriminator_channels: int = 32
    in_channels: int | None = None

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}")
        if self.reconstruction_weight < 0 or self.adversarial_weight < 0:
            raise ValueError("loss weights must be >= 0")
        if self.num_blocks < 1 or self.region_smoothing < 1:
            raise ValueError(
                f"need num_blocks >= 1 and region_smoothing >= 1, got {self.num_blocks}, {self.region_smoothing}"
            )


def central_mask(batch: int, height: int, width: int, device: torch.device | None = None) -> Tensor:
    """``(B, 1, H, W)`` float hole mask: 1 on the central ``H//2 x W//2`` square."""
    hole = torch.zeros(batch, 1, height, width, device=device)
    top, left = (height - height // 2) // 2, (width - width // 2) // 2
    hole[:, :, top : top + height // 2, left : left + width // 2] = 1.0
    return hole


def random_block_mask(
    batch: int, height: int, width: int, num_blocks: int, generator: torch.Generator | None = None, device=None
) -> Tensor:
    """Union of ``num_blocks`` squares of side ``H//4 x W//4`` with uniformly random top-left corners."""
    bh, bw = max(height // 4, 1), max(width // 4, 1)
    tops = torch.randint(0, height - bh + 1, (batch, num_blocks, 1, 1), generator=generator, device=device)
    lefts = torch.randint(0, width - bw + 1, (batch, num_blocks, 1, 1), generator=generator, device=device)
    rows = torch.arange(height, device=device).view(1, 1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, 1, width)
    inside = (rows >= tops) & (rows < tops + bh) & (cols >= lefts) & (cols < lefts + bw)
    return inside.any(dim=1, keepdim=True).float()


def random_region_mask(
    batch: int, height: int, width: int, smoothing: int, generator: torch.Generator | None = None, device=None
) -> Tensor:
    """The ``H W // 4`` pixels with the largest values of box-smoothed uniform noise."""
    noise = torch.rand(batch, 1, height, width, generator=generator, device=device)
    field = F.avg_pool2d(noise, smoothing, stride=1, padding=smoothing // 2, count_include_pad=False)
    field = field[..., :height, :width].reshape(batch, -1)
    top = field.topk((height * width) // 4, dim=1).indices
    hole = torch.zeros_like(field).scatter_(1, top, 1.0)
    return hole.view(batch, 1, height, width)


def make_hole_mask(
    config: ContextEncoderConfig, batch: int, height: int, width: int, generator=None, device=None
) -> Tensor:
    if config.mask == "central":
        return central_mask(batch, height, width, device)
    if config.mask == "random_block":
        return random_block_mask(batch, height, width, config.num_blocks, generator, device)
    return random_region_mask(batch, height, width, config.region_smoothing, generator, device)


class Discriminator(nn.Module):
    """A small DCGAN-style critic: two strided convs, LeakyReLU, global pool, one logit."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


class ContextEncoder(SSLMethod):
    name: ClassVar[str] = "context_encoder"
    family: ClassVar[str] = "self-prediction"
    citation: ClassVar[str] = "Pathak et al. 2016, arXiv 1604.07379"
    config_class: ClassVar[type] = ContextEncoderConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: ContextEncoderConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        channels = backbone_in_channels(backbone, self.config.in_channels)
        self.decoder = ConvDecoder(feature_dim, channels, self.config.decoder_channels)
        self.discriminator = Discriminator(channels, self.config.discriminator_channels)

    def validate_input(self, image_shape, num_frames=None) -> None:
        super().validate_input(image_shape)
        if min(image_shape[1:]) < 4:
            raise ValueError(f"context encoder needs images of at least 4x4 pixels, got {image_shape}")

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        b, _, h, w = x.shape
        hole = make_hole_mask(self.config, b, h, w, device=x.device)
        fill = x.mean(dim=(0, 2, 3), keepdim=True).detach()
        context = x * (1 - hole) + fill * hole
        recon = self.decoder(self.encode(context), (h, w))
        removed = (hole.expand_as(x)).sum().clamp_min(1.0)
        rec_loss = ((recon - x).pow(2) * hole).sum() / removed
        completed = x * (1 - hole) + recon * hole
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        adv_loss = F.softplus(-functional_call(self.discriminator, frozen, (completed,))).mean()
        d_loss = F.softplus(-self.discriminator(x)).mean() + F.softplus(self.discriminator(completed.detach())).mean()
        loss = self.config.reconstruction_weight * rec_loss + self.config.adversarial_weight * adv_loss + d_loss
        logs = {"loss": loss.item(), "reconstruction": rec_loss.item(), "adversarial": adv_loss.item()}
        logs["discriminator"] = d_loss.item()
        return loss, logs
