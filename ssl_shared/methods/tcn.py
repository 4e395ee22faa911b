"""Time-contrastive networks (Sermanet et al. 2018, ICRA): frames close in time (or the same moment
seen by another camera) embed close; the same camera at a distant time embeds far.

    single view:  anchor x_t, positive x_{t+d} with 1 <= |d| <= positive_window,
                  negative x_{t'} with |t' - t| >= negative_margin
    multi-view:   anchor view1_t, positive view2_t (same moment), negative view1_{t'}, |t' - t| >= margin
    e = normalize(W f(x))
    L = mean max(0, ||e_a - e_p||^2 - ||e_a - e_n||^2 + alpha)        (:func:`ssl_shared.losses.triplet_loss`)

Multi-view is used when the batch holds ``"frames_view2"`` (same shape as ``"frames"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses import triplet_loss
from ssl_shared.methods.base import SSLMethod, check_image_shape
from ssl_shared.methods.temporal import check_num_frames, get_frames, pick_frames


@dataclass
class TCNConfig:
    # Sermanet et al. 2018: 32-d L2-normalised embedding, triplet margin alpha 0.2 (FaceNet's value).
    embedding_dim: int = 32
    margin: float = 0.2
    positive_window: int = 1
    negative_margin: int = 3

    def __post_init__(self) -> None:
        if self.positive_window < 1 or self.negative_margin <= self.positive_window:
            raise ValueError(
                f"need positive_window >= 1 and negative_margin > positive_window, got "
                f"{self.positive_window}, {self.negative_margin}"
            )


def sample_triplet_times(
    batch: int, length: int, positive_window: int, negative_margin: int, generator=None, device=None
) -> Tensor:
    """``(B, 3)`` frame indices (anchor, positive, negative) following the single-view rule above."""
    if length <= negative_margin:
        raise ValueError(f"sequences of {length} frames are too short for negative_margin {negative_margin}")
    t = torch.arange(length, device=device)
    anchor = torch.randint(0, length, (batch,), generator=generator, device=device)
    gap = (t.view(1, -1) - anchor.view(-1, 1)).abs()
    scores = torch.rand(batch, length, generator=generator, device=device)
    pos_ok = (gap >= 1) & (gap <= positive_window)
    neg_ok = gap >= negative_margin
    # Every anchor has a positive (length >= 2) but may lack a far frame only if length is too short,
    # which was ruled out above (some frame is >= negative_margin away from any anchor).
    positive = torch.where(pos_ok, scores, -1.0).argmax(dim=1)
    negative = torch.where(neg_ok, scores, -1.0).argmax(dim=1)
    return torch.stack([anchor, positive, negative], dim=1)


class TCN(SSLMethod):
    name: ClassVar[str] = "tcn"
    family: ClassVar[str] = "temporal"
    citation: ClassVar[str] = "Sermanet et al. 2018, arXiv 1704.06888"
    input_note: ClassVar[str] = "optional frames_view2"
    config_class: ClassVar[type] = TCNConfig
    required_inputs: ClassVar[set[str]] = {"frames"}

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: TCNConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        self.embed = nn.Linear(feature_dim, self.config.embedding_dim)

    def validate_input(self, image_shape, num_frames=None) -> None:
        check_image_shape(self.name, image_shape)
        check_num_frames(self.name, num_frames, self.config.negative_margin + 1)

    def embedding(self, frames: Tensor) -> Tensor:
        return F.normalize(self.embed(self.encode(frames)), dim=1)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        c = self.config
        frames = get_frames(self.name, batch, c.negative_margin + 1)
        b, length = frames.shape[:2]
        times = sample_triplet_times(b, length, c.positive_window, c.negative_margin, device=frames.device)
        picked = pick_frames(frames, times)  # (B, 3, C, H, W)
        if "frames_view2" in batch:
            second = get_frames(self.name, batch, c.negative_margin + 1, key="frames_view2")
            if second.shape != frames.shape:
                raise ValueError(f"frames_view2 {tuple(second.shape)} must match frames {tuple(frames.shape)}")
            positive = pick_frames(second, times[:, :1])[:, 0]
            picked = torch.stack([picked[:, 0], positive, picked[:, 2]], dim=1)
        e = self.embedding(picked.flatten(0, 1)).view(b, 3, -1)
        loss = triplet_loss(e[:, 0], e[:, 1], e[:, 2], margin=c.margin)
        return loss, {"loss": loss.item()}
