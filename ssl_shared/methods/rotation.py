"""RotNet: predict the rotation applied to the image (Gidaris, Singh & Komodakis 2018, ICLR).

Every image of the batch is shown in all four orientations (the paper found this better than one
random rotation per image):

    x_{i,k} = rot(x_i, 90 k degrees),  k in {0, 1, 2, 3}
    L = -1/(4B) sum_{i,k} log softmax(W f(x_{i,k}))_k
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.augment import rot90_by
from ssl_shared.methods.base import SSLMethod, check_image_shape

NUM_ROTATIONS = 4


@dataclass
class RotationConfig:
    # Gidaris et al. 2018: 4 rotations (0, 90, 180, 270 degrees), all four per image in each batch.
    hidden_dim: int = 0  # 0: a linear classifier on the features; > 0: one hidden layer


def all_rotations(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(B, C, S, S)`` -> the ``4B`` rotated copies (block ``k`` holds rotation ``k``) and labels."""
    b = x.shape[0]
    k = torch.arange(NUM_ROTATIONS, device=x.device).repeat_interleave(b)
    return rot90_by(x.repeat(NUM_ROTATIONS, 1, 1, 1), k), k


def rotation_classifier(feature_dim: int, hidden_dim: int, num_classes: int) -> nn.Module:
    if hidden_dim < 0:
        raise ValueError(f"hidden_dim must be >= 0, got {hidden_dim}")
    if hidden_dim == 0:
        return nn.Linear(feature_dim, num_classes)
    return nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_classes))


class Rotation(SSLMethod):
    name: ClassVar[str] = "rotation"
    family: ClassVar[str] = "innate relationship"
    citation: ClassVar[str] = "Gidaris, Singh & Komodakis 2018, arXiv 1803.07728"
    input_note: ClassVar[str] = "square"
    config_class: ClassVar[type] = RotationConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: RotationConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        self.classifier = rotation_classifier(feature_dim, self.config.hidden_dim, NUM_ROTATIONS)

    def validate_input(self, image_shape, num_frames=None) -> None:
        _, h, w = check_image_shape(self.name, image_shape)
        if h != w:
            raise ValueError(f"rotation prediction needs square images, got H={h}, W={w}")

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        self.validate_input(tuple(x.shape[1:]))
        rotated, labels = all_rotations(x)
        logits = self.classifier(self.encode(rotated))
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"loss": loss.item(), "accuracy": acc.item()}
