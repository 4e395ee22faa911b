"""BYOL as an auxiliary loss: predictor + EMA target, no negatives (Grill et al., NeurIPS 2020)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective
from ssl_shared.heads import PredictionHead, ProjectionHead
from ssl_shared.losses import byol_loss


class ByolObjective(AuxObjective):
    """Symmetrised BYOL loss (BYOL, eq. 2):

        p  = q(g(f(obs))),          z_bar  = sg(g_bar(f_bar(obs_pos)))
        p' = q(g(f(obs_pos))),      z_bar' = sg(g_bar(f_bar(obs)))
        L = 1/2 * [ mean_i (2 - 2 cos(p_i, z_bar_i)) + mean_i (2 - 2 cos(p'_i, z_bar'_i)) ]

    ``f``/``f_bar`` are the online and critic-target encoders (the target encoder's EMA is the
    algorithm's, tau 0.05). ``g`` (projector) and ``q`` (predictor) are Linear-BN-ReLU-Linear MLPs;
    ``g_bar`` is an EMA copy of ``g`` moved with ``head_tau`` in :meth:`after_target_update`, i.e. at
    the same moments as the target encoder. ``head_tau`` defaults to 0.05 so that ``g_bar`` tracks
    ``g`` at the encoder's rate (BYOL's own 0.004 with a cosine schedule assumes far more steps).
    Widths: hidden 256, output 128 (BYOL: 4096/256 for ResNet-50; scaled to the 50-d encoder).

    Logs: ``loss`` and ``cosine`` (mean cosine similarity of predictions and targets).
    """

    name: ClassVar[str] = "byol"
    summary: ClassVar[str] = "symmetric 2 - 2 cos of predictor output and EMA-target projection, no negatives"
    second_input: ClassVar[str] = "target encoder + EMA projector (obs, obs_pos)"
    citation: ClassVar[str] = "Grill et al. 2020, arXiv 2006.07733"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        hidden_dim: int = 256,
        projection_dim: int = 128,
        head_tau: float = 0.05,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        self._build_heads(hidden_dim, projection_dim, head_tau)
        self._finish_init()

    def _build_heads(self, hidden_dim: int, projection_dim: int, head_tau: float) -> None:
        """Projector ``g``, predictor ``q`` and the EMA copy ``g_bar`` (subclasses add their own heads)."""
        self._set_projector(ProjectionHead(self.feature_dim, hidden_dim, projection_dim, batch_norm=True), head_tau)
        self.predictor = PredictionHead(projection_dim, hidden_dim, projection_dim)

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        p1 = self.predictor(self.projector(self.online_features(batch)))
        p2 = self.predictor(self.projector(self.encoder(batch.obs_pos)))
        with torch.no_grad():
            t1 = self.target_projector(self.target_encoder(batch.obs_pos))
            t2 = self.target_projector(self.target_encoder(batch.obs))
        loss = 0.5 * (byol_loss(p1, t1) + byol_loss(p2, t2))
        cosine = F.cosine_similarity(torch.cat([p1, p2]).detach(), torch.cat([t1, t2]), dim=1).mean()
        return loss, {"loss": loss.item(), "cosine": cosine.item()}
