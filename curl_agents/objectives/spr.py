"""SPR-style one-step self-predictive representations (Schwarzer et al., ICLR 2021)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch
from curl_agents.objectives.byol import ByolObjective
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


class SprObjective(ByolObjective):
    """One-step SPR: predict the target projection of the next latent (SPR with K = 1 step):

        z_hat = T(f(obs), a_t),     p = q(g(z_hat)),     y = sg(g_bar(f_bar(next_obs)))
        L = mean_i (2 - 2 cos(p_i, y_i))          (= || p/|p| - y/|y| ||^2)

    Built on :class:`~curl_agents.objectives.byol.ByolObjective` (same projector, predictor, EMA head and
    arguments) plus the transition model ``T``.
    ``f_bar`` is the critic-target encoder; ``g_bar`` an EMA copy of the projector ``g`` moved with
    ``head_tau`` in :meth:`after_target_update`. Differences from SPR (documented simplifications):
    one prediction step instead of K = 5 (the contract's batch holds ``o_{t+1}`` only), an MLP
    transition model on the 50-d features instead of a conv model on the feature map, and the
    projector is its own MLP rather than the first layer of the Q head. Terminal transitions are
    kept: ``next_obs`` is still the real successor of ``(obs, action)``.

    Logs: ``loss`` and ``cosine`` (mean cosine of prediction and target).
    """

    name: ClassVar[str] = "spr"
    summary: ClassVar[str] = "2 - 2 cos of a one-step latent prediction through a transition model"
    second_input: ClassVar[str] = "target encoder + EMA projector (next_obs)"
    citation: ClassVar[str] = "Schwarzer et al. 2021, arXiv 2007.05929"

    def _build_heads(self, hidden_dim: int, projection_dim: int, head_tau: float) -> None:
        self.transition = TransitionModel(self.feature_dim, self.action_dim, hidden_dim)
        super()._build_heads(hidden_dim, projection_dim, head_tau)

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        predicted = self.predictor(self.projector(self.transition(self.online_features(batch), batch.action)))
        with torch.no_grad():
            target = self.target_projector(self.target_encoder(batch.next_obs))
        loss = byol_loss(predicted, target)
        cosine = F.cosine_similarity(predicted.detach(), target, dim=1).mean()
        return loss, {"loss": loss.item(), "cosine": cosine.item()}
