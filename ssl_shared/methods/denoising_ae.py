"""Denoising autoencoder (Vincent et al. 2008, ICML).

Corrupt the input, reconstruct the clean input from the corrupted one:

    x~ ~ q(x~ | x)       masking: each pixel (all channels) set to 0 with probability nu
                          gaussian: x~ = x + sigma * eps,  eps ~ N(0, I)
    L = 1/N sum_i || x_i - g(f(x~_i)) ||^2 / (C H W)

``f`` is the backbone (the representation), ``g`` a :class:`ConvDecoder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.decoder import ConvDecoder, backbone_in_channels

CORRUPTIONS = ("masking", "gaussian")


@dataclass
class DenoisingAutoencoderConfig:
    # Vincent et al. 2008 use masking noise with destruction fraction nu in {0.1, 0.25, 0.5};
    # "gaussian" is their additive isotropic Gaussian noise (sigma on the [0, 1] pixel scale).
    corruption: str = "masking"
    mask_probability: float = 0.25
    noise_std: float = 0.1
    decoder_channels: int = 64
    in_channels: int | None = None

    def __post_init__(self) -> None:
        if self.corruption not in CORRUPTIONS:
            raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {self.corruption!r}")
        if not 0.0 <= self.mask_probability < 1.0:
            raise ValueError(f"mask_probability must be in [0, 1), got {self.mask_probability}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")


def corrupt(x: Tensor, config: DenoisingAutoencoderConfig, generator: torch.Generator | None = None) -> Tensor:
    """Apply the configured corruption ``q(x~ | x)`` to float images ``x``."""
    if config.corruption == "masking":
        shape = (x.shape[0], 1, x.shape[2], x.shape[3])
        keep = torch.rand(shape, generator=generator, device=x.device) >= config.mask_probability
        return x * keep
    return x + config.noise_std * torch.randn(x.shape, generator=generator, device=x.device)


class DenoisingAutoencoder(SSLMethod):
    name: ClassVar[str] = "denoising_ae"
    family: ClassVar[str] = "self-prediction"
    citation: ClassVar[str] = "Vincent, Larochelle, Bengio & Manzagol 2008, ICML"
    config_class: ClassVar[type] = DenoisingAutoencoderConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: DenoisingAutoencoderConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        channels = backbone_in_channels(backbone, self.config.in_channels)
        self.decoder = ConvDecoder(feature_dim, channels, self.config.decoder_channels)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        recon = self.decoder(self.encode(corrupt(x, self.config)), x.shape[-2:])
        loss = F.mse_loss(recon, x)
        return loss, {"loss": loss.item()}
