"""Supervised contrastive learning (Khosla et al. 2020, NeurIPS): views of the same class attract.

    z = normalize(g(f(t(x))))  for two views of every image
    L = SupCon_out(z, y; tau)                         (:func:`ssl_shared.losses.supcon_loss`)

Unlabelled samples (``label == -1``) get a label of their own, so their only positive is their other
view (the SimCLR case) and they are negatives for every other sample. The placeholder is ``-1 - j``
with ``j`` the sample's position in the *global* batch (the local batches of all processes in rank
order), so with ``gather_distributed`` unlabelled samples of different processes never share a label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ssl_shared.heads import ProjectionHead
from ssl_shared.losses import distributed, supcon_loss
from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.views import ViewConfig, augment_view


@dataclass
class SupConConfig:
    # Khosla et al. 2020: tau 0.1, 2-layer projection head to 128-d.
    temperature: float = 0.1
    projection_dim: int = 128
    hidden_dim: int | None = None
    views: ViewConfig = field(default_factory=ViewConfig)
    # Multi-process training: contrast with the embeddings of all processes (global negatives).
    gather_distributed: bool = False


def labels_with_unique_unlabelled(labels: Tensor, offset: int = 0) -> Tensor:
    """Replace each ``-1`` by a distinct negative label ``-1 - (offset + i)`` (``i`` its batch position).

    ``offset``: position of the first sample in the global batch (``distributed.local_offset(B)``), so that
    placeholders are unique across processes too.
    """
    if labels.ndim != 1:
        raise ValueError(f"labels must be (B,), got shape {tuple(labels.shape)}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    labels = labels.long()
    if bool((labels < -1).any()):
        raise ValueError("labels must be >= 0, or -1 for unlabelled samples")
    unique = -1 - offset - torch.arange(labels.shape[0], device=labels.device)
    return torch.where(labels == -1, unique, labels)


class SupCon(SSLMethod):
    name: ClassVar[str] = "supcon"
    family: ClassVar[str] = "contrastive (supervised)"
    citation: ClassVar[str] = "Khosla et al. 2020, arXiv 2004.11362"
    config_class: ClassVar[type] = SupConConfig
    required_inputs: ClassVar[set[str]] = {"image", "label"}

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: SupConConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        c = self.config
        self.projector = ProjectionHead(feature_dim, c.hidden_dim or feature_dim, c.projection_dim)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        labels = labels_with_unique_unlabelled(batch["label"].to(x.device), distributed.local_offset(x.shape[0]))
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"batch has {x.shape[0]} images but {labels.shape[0]} labels")
        views = torch.cat([augment_view(x, self.config.views) for _ in range(2)])
        z = self.projector(self.encode(views))
        loss = supcon_loss(
            z, labels.repeat(2), temperature=self.config.temperature, gather_distributed=self.config.gather_distributed
        )
        return loss, {"loss": loss.item()}
