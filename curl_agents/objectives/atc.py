"""ATC: augmented temporal contrast (Stooke, Lee, Abbeel, Laskin, ICML 2021)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective, top1_accuracy
from ssl_shared.heads import BilinearCritic


class ResidualAnchor(nn.Module):
    """ATC's anchor predictor ``c = z + MLP(z)`` (one hidden layer; ATC code: 512 units)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.net(z)


class AtcObjective(AuxObjective):
    """Bilinear InfoNCE between an observation and its successor (ATC with delta_T = 1):

        c = h(f(obs)),   p = sg(f_bar(next_obs)),   logits_ij = c_i^T W p_j - max_j(c_i^T W p_j)
        L = -1/B * sum_i log softmax(logits_i)_i

    ``h`` is the residual anchor MLP, ``f_bar`` the critic-target encoder, negatives the other
    ``B - 1`` successors in the batch. ``obs`` and ``next_obs`` carry independent augmentations, as in
    ATC. ``W`` starts orthogonal (a scale-preserving start; ATC's ``nn.Linear`` default differs).
    Difference from ATC: here the loss is trained jointly with the RL loss on the critic's encoder
    and the target is the critic-target encoder (tau 0.05), whereas ATC trains a decoupled encoder
    with its own target (tau 0.01).

    Logs: ``loss`` and ``accuracy`` (top-1: the true successor scores highest).
    """

    name: ClassVar[str] = "atc"
    summary: ClassVar[str] = "bilinear InfoNCE of a residual-MLP anchor and the next observation's key"
    second_input: ClassVar[str] = "target encoder(next_obs)"
    citation: ClassVar[str] = "Stooke, Lee, Abbeel & Laskin 2021, arXiv 2009.08319"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        anchor_hidden_dim: int = 512,
        w_init: str = "orthogonal",
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        self.anchor = ResidualAnchor(self.feature_dim, anchor_hidden_dim)
        self.critic = BilinearCritic(self.feature_dim, init=w_init)
        self._finish_init()

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        anchor = self.anchor(self.online_features(batch))
        with torch.no_grad():
            positive = self.target_encoder(batch.next_obs)
        logits = self.critic(anchor, positive)
        logits = logits - logits.max(dim=1, keepdim=True).values
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, labels)
        return loss, {"loss": loss.item(), "accuracy": top1_accuracy(logits.detach(), labels)}
