"""Shuffle and learn: temporal order verification (Misra, Zitnick & Hebert 2016, ECCV).

From five frames ``a < b < c < d < e`` of a sequence, the tuple ``(b, c, d)`` is in order (label 1)
and ``(b, a, d)`` or ``(b, e, d)`` is not (label 0: its middle frame lies outside the other two).
A shared backbone encodes the three frames, an MLP on the concatenated features classifies:

    L = CE(MLP([f(x_1), f(x_2), f(x_3)]), in_order)

Each sequence gives one positive and one negative tuple. The paper samples frames from high-motion
windows; here all frames are eligible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod, check_image_shape
from ssl_shared.methods.temporal import check_num_frames, get_frames, ordered_classifier, pick_frames

MIN_FRAMES = 5


@dataclass
class ShuffleAndLearnConfig:
    # Misra et al. 2016: tuples of 3 frames, fc layers on concatenated features, binary output.
    hidden_dim: int = 512


def sample_order_tuples(batch: int, length: int, generator=None, device=None) -> tuple[Tensor, Tensor]:
    """Frame indices ``(B, 3)`` of in-order tuples ``(b, c, d)`` and shuffled tuples ``(b, a|e, d)``."""
    if length < MIN_FRAMES:
        raise ValueError(f"shuffle-and-learn needs at least {MIN_FRAMES} frames, got {length}")
    five = torch.rand(batch, length, generator=generator, device=device).argsort(dim=1)[:, :MIN_FRAMES]
    a, b, c, d, e = five.sort(dim=1).values.unbind(1)
    use_a = torch.rand(batch, generator=generator, device=device) < 0.5
    positive = torch.stack([b, c, d], dim=1)
    negative = torch.stack([b, torch.where(use_a, a, e), d], dim=1)
    return positive, negative


class ShuffleAndLearn(SSLMethod):
    name: ClassVar[str] = "shuffle_and_learn"
    family: ClassVar[str] = "temporal"
    citation: ClassVar[str] = "Misra, Zitnick & Hebert 2016, arXiv 1603.08561"
    config_class: ClassVar[type] = ShuffleAndLearnConfig
    required_inputs: ClassVar[set[str]] = {"frames"}

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: ShuffleAndLearnConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        self.classifier = ordered_classifier(feature_dim, 3, self.config.hidden_dim)

    def validate_input(self, image_shape, num_frames=None) -> None:
        check_image_shape(self.name, image_shape)
        check_num_frames(self.name, num_frames, MIN_FRAMES)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        frames = get_frames(self.name, batch, MIN_FRAMES)
        b = frames.shape[0]
        positive, negative = sample_order_tuples(b, frames.shape[1], device=frames.device)
        tuples = pick_frames(frames, torch.cat([positive, negative]).view(2, b, 3).transpose(0, 1).reshape(b, 6))
        feats = self.encode(tuples.flatten(0, 1)).view(2 * b, -1)  # rows: sample-major, 2 tuples x 3 frames
        logits = self.classifier(feats)
        labels = torch.tensor([1, 0], device=frames.device).repeat(b)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"loss": loss.item(), "accuracy": acc.item()}
