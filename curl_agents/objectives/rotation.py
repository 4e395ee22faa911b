"""Rotation prediction: 4-way classification of quarter-turn rotations (RotNet, Gidaris et al.,
ICLR 2018; "Rotation-CLS" in Li et al. 2022)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective, top1_accuracy
from ssl_shared.augment import rot90


class RotationObjective(AuxObjective):
    """Cross-entropy of the rotation label:

        k_i ~ U{0, 1, 2, 3},   x_i = rot90(obs_i, k_i)   (all frames of a stack turn together)
        L = -1/B * sum_i log softmax(h(f(x_i)))_{k_i}

    ``h`` is Linear-ReLU-Linear with hidden width ``feature_dim`` (Li et al. 2022's ``rot_cls``).
    Li et al. classify all four rotations of every sample; here each sample gets one random
    rotation (same cost as one encoder pass). Observations must be square (``ValueError`` otherwise).
    ``generator`` (CPU or on the encoder's device) draws the rotations; ``None`` uses torch's default.

    Logs: ``loss`` and ``accuracy``.
    """

    name: ClassVar[str] = "rotation"
    summary: ClassVar[str] = "4-way cross-entropy of a random quarter-turn rotation"
    second_input: ClassVar[str] = "rot90(obs)"
    citation: ClassVar[str] = "Gidaris, Singh & Komodakis 2018, arXiv 1803.07728; Li et al. 2022, arXiv 2206.05266"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        obs_shape = tuple(getattr(encoder, "obs_shape", ()))
        if len(obs_shape) == 3 and obs_shape[1] != obs_shape[2]:
            raise ValueError(f"rotation needs square observations, got obs_shape {obs_shape}")
        self.generator = generator
        self.classifier = nn.Sequential(
            nn.Linear(self.feature_dim, self.feature_dim), nn.ReLU(inplace=True), nn.Linear(self.feature_dim, 4)
        )
        self._finish_init()

    def rotated(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Randomly rotated observations and their labels ``k`` (quarter turns, counter-clockwise)."""
        if obs.ndim != 4 or obs.shape[-1] != obs.shape[-2]:
            raise ValueError(f"rotation needs square observations (B, C, H, H), got {tuple(obs.shape)}")
        x, params = rot90(obs, generator=self.generator, return_params=True)
        return x, params["k"].to(obs.device)

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        x, labels = self.rotated(batch.obs)
        logits = self.classifier(self.encoder(x))
        loss = F.cross_entropy(logits, labels)
        return loss, {"loss": loss.item(), "accuracy": top1_accuracy(logits.detach(), labels)}
