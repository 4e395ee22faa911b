"""Context prediction: where is the second patch relative to the first? (Doersch, Gupta & Efros 2015, ICCV)

A 3x3 layout of ``p x p`` patches separated by a gap ``g`` is placed at a random spot; the centre patch
and one of its 8 neighbours are cut, each moved by its own jitter in ``[-j, j]`` pixels (so patch
edges do not line up), and a classifier on the pair of backbone features predicts the neighbour's
direction:

    label k in 0..7 for (row, col) offsets (-1,-1) (-1,0) (-1,1) (0,-1) (0,1) (1,-1) (1,0) (1,1)
    L = CE(MLP([f(centre), f(neighbour)]), k)

Patches never overlap because ``g >= 2 j``. Doersch et al.: 96 px patches, 48 px gap, 7 px jitter.
The paper's colour-dropping and chromatic-aberration countermeasures are not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.augment import crop_at
from ssl_shared.methods.base import SSLMethod, check_image_shape

NEIGHBOR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass
class RelativePositionConfig:
    # Doersch et al. 2015: gap = patch / 2 (48 of 96 px), jitter up to 7/96 of the patch size.
    gap_fraction: float = 0.5
    jitter_fraction: float = 7 / 96
    hidden_dim: int = 512

    def __post_init__(self) -> None:
        if self.gap_fraction < 0 or self.jitter_fraction < 0 or self.hidden_dim < 1:
            raise ValueError("gap_fraction and jitter_fraction must be >= 0 and hidden_dim >= 1")
        if 2 * self.jitter_fraction > self.gap_fraction:
            raise ValueError(
                f"jitter_fraction {self.jitter_fraction} must be at most gap_fraction/2 "
                f"({self.gap_fraction / 2}) so patches cannot overlap"
            )


def patch_geometry(image_hw: tuple[int, int], config: RelativePositionConfig) -> tuple[int, int, int]:
    """``(patch, gap, jitter)`` in pixels: the largest patch whose jittered 3x3 layout fits the image."""
    side = min(image_hw)
    patch = int(side / (3 + 2 * config.gap_fraction + 2 * config.jitter_fraction))
    while patch > 0:
        gap, jitter = int(config.gap_fraction * patch), int(config.jitter_fraction * patch)
        if 3 * patch + 2 * gap + 2 * jitter <= side:
            return patch, gap, jitter
        patch -= 1
    raise ValueError(f"images of {image_hw} are too small for a 3x3 patch layout")


def sample_patch_pairs(
    x: Tensor, patch: int, gap: int, jitter: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Centre patches, neighbour patches ``(B, C, p, p)``, labels ``(B,)`` and boxes ``(B, 2, 2)``
    (``boxes[:, 0]`` = centre (top, left), ``boxes[:, 1]`` = neighbour (top, left))."""
    b, _, h, w = x.shape
    span = 3 * patch + 2 * gap
    dev = x.device

    def draw(low: int, high: int, shape: tuple[int, ...]) -> Tensor:
        return torch.randint(low, high + 1, shape, generator=generator, device=dev)

    origin_top = draw(jitter, h - span - jitter, (b,))
    origin_left = draw(jitter, w - span - jitter, (b,))
    labels = draw(0, len(NEIGHBOR_OFFSETS) - 1, (b,))
    offsets = torch.tensor(NEIGHBOR_OFFSETS, device=dev)[labels]  # (B, 2)
    step = patch + gap
    jit = draw(-jitter, jitter, (b, 2, 2))
    centre = torch.stack([origin_top + step, origin_left + step], dim=1) + jit[:, 0]
    neighbour = torch.stack([origin_top, origin_left], dim=1) + (offsets + 1) * step + jit[:, 1]
    centre_patch = crop_at(x, centre[:, 0], centre[:, 1], patch)
    neighbour_patch = crop_at(x, neighbour[:, 0], neighbour[:, 1], patch)
    return centre_patch, neighbour_patch, labels, torch.stack([centre, neighbour], dim=1)


class RelativePosition(SSLMethod):
    name: ClassVar[str] = "relative_position"
    family: ClassVar[str] = "innate relationship"
    citation: ClassVar[str] = "Doersch, Gupta & Efros 2015, arXiv 1505.05192"
    config_class: ClassVar[type] = RelativePositionConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: RelativePositionConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        hidden = self.config.hidden_dim
        self.classifier = nn.Sequential(
            nn.Linear(2 * feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, len(NEIGHBOR_OFFSETS))
        )

    def validate_input(self, image_shape, num_frames=None) -> None:
        c, h, w = check_image_shape(self.name, image_shape)
        patch, _, _ = patch_geometry((h, w), self.config)
        self.check_backbone_accepts((c, patch, patch), "relative-position patches")

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        patch, gap, jitter = patch_geometry(tuple(x.shape[-2:]), self.config)
        centre, neighbour, labels, _ = sample_patch_pairs(x, patch, gap, jitter)
        feats = self.encode(torch.cat([centre, neighbour])).view(2, x.shape[0], -1)
        logits = self.classifier(torch.cat([feats[0], feats[1]], dim=1))
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"loss": loss.item(), "accuracy": acc.item()}
