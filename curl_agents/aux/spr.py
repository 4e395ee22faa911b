"""SPR-style one-step self-predictive representations (Schwarzer et al., ICLR 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.aux.base import AuxBatch, AuxObjective
from ssl_shared.heads import PredictionHead, ProjectionHead
from ssl_shared.losses import byol_loss


class TransitionModel(nn.Module):
    """Latent dynamics ``T(z_t, a_t) -> z_hat_{t+1}``: MLP on ``[z, a]`` ending in LayerNorm, so the
    prediction lives in the same (LayerNorm-ed) space as the encoder's output."""

    def __init__(self, feature_dim: int, action_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim + action_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, feature_dim),
            nn.LayerNorm(feature_dim),
        )

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, action], dim=1))


class SprObjective(AuxObjective):
    """One-step SPR: predict the target projection of the next latent (SPR with K = 1 step):

        z_hat = T(f(obs), a_t),     p = q(g(z_hat)),     y = sg(g_bar(f_bar(next_obs)))
        L = mean_i (2 - 2 cos(p_i, y_i))          (= || p/|p| - y/|y| ||^2)

    ``f_bar`` is the critic-target encoder; ``g_bar`` an EMA copy of the projector ``g`` moved with
    ``head_tau`` in :meth:`after_target_update`. Differences from SPR (documented simplifications):
    one prediction step instead of K = 5 (the contract's batch holds ``o_{t+1}`` only), an MLP
    transition model on the 50-d features instead of a conv model on the feature map, and the
    projector is its own MLP rather than the first layer of the Q head. Terminal transitions are
    kept: ``next_obs`` is still the real successor of ``(obs, action)``.

    Logs: ``loss`` and ``cosine`` (mean cosine of prediction and target).
    """

    name = "spr"

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
        if not 0.0 <= head_tau <= 1.0:
            raise ValueError(f"head_tau must be in [0, 1], got {head_tau}")
        self.head_tau = head_tau
        self.transition = TransitionModel(self.feature_dim, self.action_dim, hidden_dim)
        self.projector = ProjectionHead(self.feature_dim, hidden_dim, projection_dim, batch_norm=True)
        self.predictor = PredictionHead(projection_dim, hidden_dim, projection_dim)
        self.target_projector = self._frozen_copy(self.projector)
        self._finish_init()

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        predicted = self.predictor(self.projector(self.transition(self.encoder(batch.obs), batch.action)))
        with torch.no_grad():
            target = self.target_projector(self.target_encoder(batch.next_obs))
        loss = byol_loss(predicted, target)
        cosine = F.cosine_similarity(predicted.detach(), target, dim=1).mean()
        return loss, {"loss": loss.item(), "cosine": cosine.item()}

    def after_target_update(self) -> None:
        self._ema(self.projector, self.target_projector, self.head_tau)
