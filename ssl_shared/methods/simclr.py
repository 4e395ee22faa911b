"""SimCLR (Chen et al. 2020, ICML) and SimCLR v2's deeper projection head (Chen et al. 2020, NeurIPS).

Two random views of every image, a shared backbone ``f`` and projection MLP ``g``:

    z_a = g(f(t(x))),  z_b = g(f(t'(x)))            t, t' ~ T (:mod:`.views`)
    L   = NT-Xent(z_a, z_b; tau)                    (:func:`ssl_shared.losses.nt_xent_loss`)

v2 differs only in the head: 3 layers instead of 2 (and temperature 0.1 in its ImageNet runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ssl_shared.heads import ProjectionHead
from ssl_shared.losses import nt_xent_loss
from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.views import ViewConfig, augment_view


@dataclass
class SimCLRConfig:
    # Chen et al. 2020: 2-layer MLP head to 128-d, hidden width = backbone width (None = feature_dim),
    # tau 0.5 in the CIFAR-10 runs (0.1 on ImageNet).
    temperature: float = 0.5
    projection_dim: int = 128
    hidden_dim: int | None = None
    projection_layers: int = 2
    views: ViewConfig = field(default_factory=ViewConfig)
    # Multi-process training: contrast with the embeddings of all processes (global negatives).
    gather_distributed: bool = False


@dataclass
class SimCLRv2Config(SimCLRConfig):
    # Chen et al. 2020b (SimCLR v2): 3-layer projection head, tau 0.1.
    temperature: float = 0.1
    projection_layers: int = 3


class SimCLR(SSLMethod):
    name: ClassVar[str] = "simclr"
    family: ClassVar[str] = "contrastive"
    citation: ClassVar[str] = "Chen, Kornblith, Norouzi & Hinton 2020, arXiv 2002.05709"
    config_class: ClassVar[type] = SimCLRConfig
    min_batch_size: ClassVar[int] = 2

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: SimCLRConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        c = self.config
        hidden = c.hidden_dim or feature_dim
        self.projector = ProjectionHead(feature_dim, hidden, c.projection_dim, num_layers=c.projection_layers)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        if x.shape[0] < 2:
            raise ValueError("SimCLR needs a batch of at least 2 images (the other images are the negatives)")
        views = [augment_view(x, self.config.views) for _ in range(2)]
        z = self.projector(self.encode(torch.cat(views)))
        z_a, z_b = z.chunk(2)
        loss = nt_xent_loss(
            z_a, z_b, temperature=self.config.temperature, gather_distributed=self.config.gather_distributed
        )
        return loss, {"loss": loss.item()}


class SimCLRv2(SimCLR):
    name: ClassVar[str] = "simclr_v2"
    family: ClassVar[str] = "contrastive"
    citation: ClassVar[str] = "Chen, Kornblith, Swersky, Norouzi & Hinton 2020, arXiv 2006.10029"
    config_class: ClassVar[type] = SimCLRv2Config
