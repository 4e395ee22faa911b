"""SimCLR as an auxiliary loss: NT-Xent between two augmented views (Chen et al., ICML 2020)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective, top1_accuracy
from ssl_shared.heads import ProjectionHead
from ssl_shared.losses import nt_xent_loss


class SimClrObjective(AuxObjective):
    """NT-Xent between projections of two views, both through the online encoder (SimCLR, eq. 1):

        z = normalize(g(f(obs))),  z' = normalize(g(f(obs_pos))),  s_ij = z_i . z'_j / tau
        L = 1/(2B) * sum_i [ l(z_i, z'_i) + l(z'_i, z_i) ],
        l(u_i, v_i) = -log( exp(u_i.v_i/tau) / sum_{w in {z, z'} \\ {u_i}} exp(u_i.w/tau) )

    i.e. ``2B - 2`` in-batch negatives per anchor, no momentum encoder. ``g`` is SimCLR's projection
    head (Linear-BN-ReLU-Linear; hidden 256 and output 128 here, the paper's output width 128 with a
    hidden width sized for the 50-d encoder). Temperature: SimCLR reports 0.1 as best for its
    ImageNet runs (Table 5) and uses 0.5 on CIFAR-10; we default to 0.1.

    Logs: ``loss`` and ``accuracy`` (top-1: the other view wins among the ``2B - 1`` candidates).
    """

    name: ClassVar[str] = "simclr"
    summary: ClassVar[str] = "NT-Xent of projections of two views, in-batch negatives"
    second_input: ClassVar[str] = "online encoder(obs_pos)"
    citation: ClassVar[str] = "Chen, Kornblith, Norouzi & Hinton 2020, arXiv 2002.05709"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        temperature: float = 0.1,
        hidden_dim: int = 256,
        projection_dim: int = 128,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.projector = ProjectionHead(self.feature_dim, hidden_dim, projection_dim, batch_norm=True)
        self._finish_init()

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        z1 = self.projector(self.online_features(batch))
        z2 = self.projector(self.encoder(batch.obs_pos))
        loss = nt_xent_loss(z1, z2, temperature=self.temperature)
        return loss, {"loss": loss.item(), "accuracy": _view_accuracy(z1.detach(), z2.detach())}


def _view_accuracy(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """Top-1 over the ``2B - 1`` candidates (self excluded): is the other view the most similar?"""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))
    b = z1.shape[0]
    labels = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return top1_accuracy(sim, labels)
