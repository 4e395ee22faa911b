"""Forward dynamics + reward prediction: the loss Li et al. 2022's search converged on ("Predict-FR";
"Does Self-supervised Learning Really Improve RL from Pixels?", NeurIPS 2022)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective


class ForwardDynamicsObjective(AuxObjective):
    """Predict the next latent and the reward from the current latent and the action:

        e = ReLU(Linear(a_t)),   [z_hat, r_hat] = MLP([f(obs), e]),   z_next = sg(f_bar(next_obs))
        L = latent_weight * mean (z_hat - z_next)^2  +  reward_weight * mean (r_hat - r_t)^2

    Architecture and weights follow Li et al.'s code (``LostXine/elo-sac``, ``EloCombo``): action
    embedding of width ``hidden_dim // 4``, one hidden ReLU layer of width ``hidden_dim`` (1024, the
    critic's width), MSE for both terms, averaged (weights 0.5 / 0.5). Their best combination
    (``server/top8.json``) puts nearly all weight on this loss (1.27; the others <= 0.02).
    Difference: the latent target is read from the critic-target encoder (a slowly moving, detached
    target); Li et al. use the online encoder under ``no_grad``.

    Logs: ``loss``, ``latent_mse``, ``reward_mse``.
    """

    name: ClassVar[str] = "forward_dynamics"
    summary: ClassVar[str] = "MSE of z_t+1 and of the reward predicted from (z_t, a_t)"
    second_input: ClassVar[str] = "target encoder(next_obs)"
    citation: ClassVar[str] = "Li, Shang, Das & Ryoo 2022, arXiv 2206.05266"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        hidden_dim: int = 1024,
        latent_weight: float = 0.5,
        reward_weight: float = 0.5,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        if not latent_weight >= 0 or not reward_weight >= 0:
            raise ValueError(f"latent_weight and reward_weight must be >= 0, got {latent_weight}, {reward_weight}")
        if hidden_dim < 4:
            raise ValueError(f"hidden_dim must be >= 4 (the action embedding is hidden_dim // 4), got {hidden_dim}")
        self.latent_weight = latent_weight
        self.reward_weight = reward_weight
        self.action_embedding = nn.Sequential(nn.Linear(self.action_dim, hidden_dim // 4), nn.ReLU(inplace=True))
        self.model = nn.Sequential(
            nn.Linear(self.feature_dim + hidden_dim // 4, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, self.feature_dim + 1),
        )
        self._finish_init()

    def predict(self, z: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_hat_{t+1}, r_hat_t)`` of shapes ``(B, feature_dim)`` and ``(B, 1)``."""
        out = self.model(torch.cat([z, self.action_embedding(action)], dim=1))
        return out[:, :-1], out[:, -1:]

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        z_hat, r_hat = self.predict(self.online_features(batch), batch.action)
        with torch.no_grad():
            z_next = self.target_encoder(batch.next_obs)
        latent_mse = F.mse_loss(z_hat, z_next)
        reward_mse = F.mse_loss(r_hat, batch.reward)
        loss = self.latent_weight * latent_mse + self.reward_weight * reward_mse
        return loss, {"loss": loss.item(), "latent_mse": latent_mse.item(), "reward_mse": reward_mse.item()}
