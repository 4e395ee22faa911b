"""MoCo v2 (He et al. 2020, CVPR; Chen, Fan, Girshick & He 2020, "Improved baselines"): a momentum key
encoder and a FIFO queue of past keys as negatives.

    q = g_q(f_q(t(x))),   k = g_k(f_k(t'(x)))        (no gradient through the key encoder)
    L = -log exp(q.k / tau) / (exp(q.k / tau) + sum_{n in queue} exp(q.n / tau))   (cosine critic)
    after the optimiser step:  theta_k <- m theta_k + (1 - m) theta_q;  enqueue(k of all processes)

v2 adds the MLP head, SimCLR-style augmentation with blur, and tau 0.2. MoCo's shuffled batch-norm
needs several devices and is not done; on one device the keys' batch statistics are those of the key
batch itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ssl_shared.heads import ProjectionHead
from ssl_shared.losses import distributed, info_nce_loss
from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.views import ViewConfig, augment_view
from ssl_shared.momentum import MomentumEncoder
from ssl_shared.queues import KeyQueue


@dataclass
class MoCoConfig:
    # Chen et al. 2020 (MoCo v2, arXiv 2003.04297): m 0.999, K 65536, tau 0.2, 2-layer MLP head (hidden
    # 2048) to 128-d. Views as facebookresearch/moco main_moco.py (aug_plus, commit 010242b): crop scale
    # (0.2, 1), colour jitter (0.4, 0.4, 0.4, 0.1) with p 0.8 (strength 0.5), grayscale p 0.2, blur p 0.5.
    momentum: float = 0.999
    queue_size: int = 65536
    temperature: float = 0.2
    projection_dim: int = 128
    hidden_dim: int = 2048
    views: ViewConfig = field(default_factory=lambda: ViewConfig(crop_scale=(0.2, 1.0), blur_probability=0.5))

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum <= 1.0 or self.queue_size < 1:
            raise ValueError(f"need momentum in [0, 1] and queue_size >= 1, got {self.momentum}, {self.queue_size}")


class MoCo(SSLMethod):
    name: ClassVar[str] = "moco_v2"
    family: ClassVar[str] = "contrastive"
    citation: ClassVar[str] = "He et al. 2020, arXiv 1911.05722; Chen, Fan, Girshick & He 2020, arXiv 2003.04297"
    config_class: ClassVar[type] = MoCoConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: MoCoConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        c = self.config
        projector = ProjectionHead(feature_dim, c.hidden_dim, c.projection_dim, batch_norm=False)
        self.query_net = nn.Sequential(backbone, projector)
        self.key_net = MomentumEncoder(self.query_net)
        self.queue = KeyQueue(c.projection_dim, c.queue_size)
        self._pending_keys: Tensor | None = None

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        x_q = augment_view(x, self.config.views) * self.pixel_scale
        x_k = augment_view(x, self.config.views) * self.pixel_scale
        q = self.query_net(x_q)
        k = nn.functional.normalize(self.key_net(x_k), dim=1)
        loss = info_nce_loss(
            q,
            k,
            critic="cosine",
            temperature=self.config.temperature,
            negatives="queue",
            queue=self.queue.keys.detach().clone(),
        )
        self._pending_keys = k.detach()
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.key_net.update(self.query_net, 1.0 - self.config.momentum)
        if self._pending_keys is not None:
            # The keys of all processes in rank order (facebookresearch/moco, moco/builder.py,
            # _dequeue_and_enqueue with concat_all_gather): every process holds the same queue.
            self.queue.enqueue(distributed.gather(self._pending_keys))
            self._pending_keys = None
