"""Variational autoencoder (Kingma & Welling 2014, ICLR) as a pretext task.

    q(z | x) = N(mu(f(x)), diag(exp(logvar(f(x))))),   z = mu + exp(logvar / 2) * eps
    L = 1/N sum_i [ sum_pixels BCE(x_i, sigmoid(g(z_i)))  +  beta * KL(q(z | x_i) || N(0, I)) ]
    KL = -1/2 sum_d (1 + logvar_d - mu_d^2 - exp(logvar_d))

``f`` is the backbone (the representation probed afterwards), ``mu``/``logvar`` two linear maps to
``latent_dim``, ``g`` a :class:`ConvDecoder`. Pixels in ``[0, 1]`` are modelled as Bernoulli means
(the continuous-Bernoulli correction is not applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.decoder import ConvDecoder, backbone_in_channels


@dataclass
class VAEConfig:
    # Kingma & Welling 2014; beta = 1 is the evidence lower bound (beta != 1: Higgins et al. 2017).
    latent_dim: int = 32
    beta: float = 1.0
    decoder_channels: int = 64
    in_channels: int | None = None

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.beta < 0:
            raise ValueError(f"need latent_dim >= 1 and beta >= 0, got {self.latent_dim}, {self.beta}")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per sample, shape ``(B,)``."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


class VAE(SSLMethod):
    name: ClassVar[str] = "vae"
    family: ClassVar[str] = "self-prediction"
    citation: ClassVar[str] = "Kingma & Welling 2014, arXiv 1312.6114"
    config_class: ClassVar[type] = VAEConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: VAEConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        channels = backbone_in_channels(backbone, self.config.in_channels)
        self.to_mu = nn.Linear(feature_dim, self.config.latent_dim)
        self.to_logvar = nn.Linear(feature_dim, self.config.latent_dim)
        self.decoder = ConvDecoder(self.config.latent_dim, channels, self.config.decoder_channels)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        if x.min() < 0 or x.max() > 1:
            raise ValueError("VAE models pixels as Bernoulli means: images must lie in [0, 1]")
        h = self.encode(x)
        mu, logvar = self.to_mu(h), self.to_logvar(h).clamp(-10.0, 10.0)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decoder(z, x.shape[-2:])
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
        kl = gaussian_kl(mu, logvar).mean()
        loss = recon + self.config.beta * kl
        return loss, {"loss": loss.item(), "reconstruction": recon.item(), "kl": kl.item()}
