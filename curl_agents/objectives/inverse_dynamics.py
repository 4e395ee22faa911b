"""Inverse dynamics: predict the action from two consecutive latents (Pathak et al. 2017's inverse
model; used as the SSL head of PAD, Hansen et al., ICLR 2021)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective


class InverseDynamicsObjective(AuxObjective):
    """MSE regression of the continuous action:

        a_hat = MLP([f(obs), f(next_obs)])          (both through the online encoder, as in PAD)
        L = mean_ij (a_hat_ij - a_ij)^2

    The MLP has one hidden ReLU layer of width ``hidden_dim`` (1024, the critic's width) and a linear
    output, like Li et al. 2022's "Extract-AR" head (``LostXine/elo-sac``, which also regresses the
    reward; here only the action, as in PAD).

    Logs: ``loss``.
    """

    name: ClassVar[str] = "inverse_dynamics"
    summary: ClassVar[str] = "MSE of the action predicted from (z_t, z_t+1)"
    second_input: ClassVar[str] = "online encoder(next_obs)"
    citation: ClassVar[str] = "Pathak et al. 2017, arXiv 1705.05363; PAD: Hansen et al. 2021, arXiv 2007.04309"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        hidden_dim: int = 1024,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        self.head = nn.Sequential(
            nn.Linear(2 * self.feature_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, self.action_dim),
        )
        self._finish_init()

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        z = self.online_features(batch)
        z_next = self.encoder(batch.next_obs)
        predicted = self.head(torch.cat([z, z_next], dim=1))
        loss = F.mse_loss(predicted, batch.action)
        return loss, {"loss": loss.item()}
