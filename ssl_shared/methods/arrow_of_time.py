"""Arrow of time (Wei, Lim, Zisserman & Freeman 2018, CVPR): is the clip played forwards or backwards?

A clip of ``clip_length`` consecutive frames (every ``frame_stride``-th frame) is reversed with
probability 1/2; a shared backbone encodes each frame and an MLP on the features concatenated in
clip order predicts the direction:

    L = CE(MLP([f(x_{t_1}), ..., f(x_{t_L})]), forward)

Wei et al. feed optical flow to a temporal class-activation network; here raw frames are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod, check_image_shape
from ssl_shared.methods.temporal import check_num_frames, get_frames, ordered_classifier, pick_frames


@dataclass
class ArrowOfTimeConfig:
    # Wei et al. 2018 classify 10-frame chunks; 4 frames keep CPU runs small.
    clip_length: int = 4
    frame_stride: int = 1
    hidden_dim: int = 512

    def __post_init__(self) -> None:
        if self.clip_length < 2 or self.frame_stride < 1:
            raise ValueError(
                f"need clip_length >= 2 and frame_stride >= 1, got {self.clip_length}, {self.frame_stride}"
            )

    @property
    def span(self) -> int:
        return (self.clip_length - 1) * self.frame_stride + 1


def sample_clips(
    batch: int, length: int, config: ArrowOfTimeConfig, generator=None, device=None
) -> tuple[Tensor, Tensor]:
    """Frame indices ``(B, clip_length)`` in playback order and labels ``(B,)`` (1 forward, 0 reversed)."""
    if length < config.span:
        raise ValueError(f"clips span {config.span} frames but sequences have {length}")
    start = torch.randint(0, length - config.span + 1, (batch, 1), generator=generator, device=device)
    forward_idx = start + config.frame_stride * torch.arange(config.clip_length, device=device)
    forward = torch.rand(batch, generator=generator, device=device) < 0.5
    idx = torch.where(forward.view(-1, 1), forward_idx, forward_idx.flip(1))
    return idx, forward.long()


class ArrowOfTime(SSLMethod):
    name: ClassVar[str] = "arrow_of_time"
    family: ClassVar[str] = "temporal"
    citation: ClassVar[str] = "Wei, Lim, Zisserman & Freeman 2018, CVPR"
    config_class: ClassVar[type] = ArrowOfTimeConfig
    required_inputs: ClassVar[set[str]] = {"frames"}

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: ArrowOfTimeConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        self.classifier = ordered_classifier(feature_dim, self.config.clip_length, self.config.hidden_dim)

    def validate_input(self, image_shape, num_frames=None) -> None:
        check_image_shape(self.name, image_shape)
        check_num_frames(self.name, num_frames, self.config.span)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        frames = get_frames(self.name, batch, self.config.span)
        b = frames.shape[0]
        idx, labels = sample_clips(b, frames.shape[1], self.config, device=frames.device)
        feats = self.encode(pick_frames(frames, idx).flatten(0, 1)).view(b, -1)
        logits = self.classifier(feats)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"loss": loss.item(), "accuracy": acc.item()}
