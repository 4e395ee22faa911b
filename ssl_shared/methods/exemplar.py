"""Exemplar CNN (Dosovitskiy et al. 2014, NeurIPS): every seed image is its own surrogate class.

Each dataset image ``x_i`` (a "seed", index ``i`` from ``batch["index"]``) is transformed
``views_per_image`` times by random crops, flips and colour changes; a classifier over all
``num_samples`` surrogate classes must recognise which seed a transformed image came from:

    L = -1/(B V) sum_{i, v} log softmax(W f(t_v(x_i)))_{index_i}

``num_samples`` must be the dataset size (the trainer sets it); Dosovitskiy et al. use 8000-32000
seeds with 100 precomputed transformations each, here transformations are drawn on the fly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.views import ViewConfig, augment_view


@dataclass
class ExemplarConfig:
    # Dosovitskiy et al. 2014: 8000 surrogate classes on STL-10 (set num_samples = dataset size).
    num_samples: int = 8000
    views_per_image: int = 2
    views: ViewConfig = field(default_factory=lambda: ViewConfig(crop_scale=(0.3, 1.0), jitter_strength=1.0))

    def __post_init__(self) -> None:
        if self.num_samples < 2 or self.views_per_image < 1:
            raise ValueError(
                f"need num_samples >= 2 and views_per_image >= 1, got {self.num_samples}, {self.views_per_image}"
            )


def check_indices(index: Tensor, num_samples: int, batch: int) -> Tensor:
    if index.shape != (batch,):
        raise ValueError(f"batch['index'] must have shape ({batch},), got {tuple(index.shape)}")
    index = index.long()
    if bool((index < 0).any()) or bool((index >= num_samples).any()):
        raise ValueError(
            f"dataset indices must lie in [0, {num_samples - 1}] (num_samples={num_samples}); got range "
            f"[{int(index.min())}, {int(index.max())}] -- set num_samples to the dataset size"
        )
    return index


def surrogate_batch(x: Tensor, index: Tensor, views: int, config: ViewConfig) -> tuple[Tensor, Tensor]:
    """``views`` transformed copies of every seed and their surrogate labels (the seed indices)."""
    images = torch.cat([augment_view(x, config) for _ in range(views)])
    return images, index.repeat(views)


class Exemplar(SSLMethod):
    name: ClassVar[str] = "exemplar"
    family: ClassVar[str] = "contrastive"
    citation: ClassVar[str] = "Dosovitskiy et al. 2014, arXiv 1406.6909"
    config_class: ClassVar[type] = ExemplarConfig
    required_inputs: ClassVar[set[str]] = {"image", "index"}

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: ExemplarConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        self.classifier = nn.Linear(feature_dim, self.config.num_samples)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        index = check_indices(batch["index"].to(x.device), self.config.num_samples, x.shape[0])
        images, labels = surrogate_batch(x, index, self.config.views_per_image, self.config.views)
        logits = self.classifier(self.encode(images))
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"loss": loss.item(), "accuracy": acc.item()}
