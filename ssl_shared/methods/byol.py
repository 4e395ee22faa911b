"""BYOL (Grill et al. 2020, NeurIPS): predict a slowly moving target network's projection.

    online:  z = g_theta(f_theta(v)),  p = q_theta(z)          target: z' = g_xi(f_xi(v'))
    L = (2 - 2 cos(p_1, sg(z'_2))) + (2 - 2 cos(p_2, sg(z'_1)))  (:func:`symmetric_byol_loss`)
    after the optimiser step: xi <- m xi + (1 - m) theta,
                              m = 1 - (1 - m_base)(cos(pi k / K) + 1) / 2   (m_base = 0.996)

Both views use the same augmentation family here; the paper's asymmetric blur/solarisation
probabilities (blur 1.0 / 0.1, solarisation 0 / 0.2) are not reproduced: both views blur with p = 0.5 and
none is solarised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ssl_shared.heads import PredictionHead, ProjectionHead
from ssl_shared.losses import symmetric_byol_loss
from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.views import ViewConfig, augment_view
from ssl_shared.momentum import MomentumEncoder, cosine_momentum


@dataclass
class BYOLConfig:
    # Grill et al. 2020 (arXiv 2006.07733): projector and predictor MLPs 4096 -> 256, base momentum 0.996
    # (cosine to 1). Views (App. B): crop scale (0.08, 1), flip, colour jitter brightness 0.4, contrast 0.4,
    # saturation 0.2, hue 0.1 with p 0.8, grayscale p 0.2; blur p 0.5 stands for the paper's 1.0 / 0.1.
    projection_dim: int = 256
    hidden_dim: int = 4096
    base_momentum: float = 0.996
    views: ViewConfig = field(
        default_factory=lambda: ViewConfig(
            jitter_strength=1.0, jitter_scales=(0.4, 0.4, 0.2, 0.1), blur_probability=0.5
        )
    )


class BYOL(SSLMethod):
    name: ClassVar[str] = "byol"
    family: ClassVar[str] = "distillation"
    citation: ClassVar[str] = "Grill et al. 2020, arXiv 2006.07733"
    config_class: ClassVar[type] = BYOLConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: BYOLConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        c = self.config
        self.online = nn.Sequential(backbone, ProjectionHead(feature_dim, c.hidden_dim, c.projection_dim))
        self.predictor = PredictionHead(c.projection_dim, c.hidden_dim, c.projection_dim)
        self.target = MomentumEncoder(self.online)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        views = torch.cat([augment_view(x, self.config.views) for _ in range(2)]) * self.pixel_scale
        p_1, p_2 = self.predictor(self.online(views)).chunk(2)
        z_1, z_2 = self.target(views).chunk(2)
        loss = symmetric_byol_loss(p_1, p_2, z_1, z_2)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        m = cosine_momentum(step, total_steps, self.config.base_momentum)
        self.target.update(self.online, 1.0 - m)
