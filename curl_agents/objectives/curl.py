"""CURL: contrastive unsupervised representations for RL (Srinivas, Laskin, Abbeel, ICML 2020)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective, top1_accuracy
from ssl_shared.heads import BilinearCritic


class CurlObjective(AuxObjective):
    """Bilinear InfoNCE between an anchor and a momentum key (CURL, eq. 2 and Alg. 1):

        z_a = g(f(obs)),   z_k = sg(g_bar(f_bar(obs_pos)))
        logits_ij = z_a_i^T W z_k_j - max_j(z_a_i^T W z_k_j)
        L = -1/B * sum_i log softmax(logits_i)_i

    ``f`` is the online encoder, ``f_bar`` the critic-target encoder (the official key encoder, EMA
    tau 0.05 applied by the algorithm), negatives are the other ``B - 1`` keys of the batch, there is
    no temperature. ``W`` starts uniform in [0, 1) as in the official code (``curl_sac.py`` L198);
    ``w_init="orthogonal"`` gives an orthogonal start instead.

    ``g`` is the identity by default, which is what the published runs used: in the official code
    ``curl_latent_dim`` never reaches the model (argument-order bug), so ``W`` is ``50 x 50``. With
    ``latent_dim=k`` a linear projection ``g`` to ``k`` dims is added, its key-side copy ``g_bar``
    follows by EMA with ``head_tau`` (default 0.05, the encoder tau) in :meth:`after_target_update`,
    and ``W`` is ``k x k``.

    ``official_double_step=True`` reproduces how the official code applies this loss (``update_cpc``):
    two Adam optimizers, ``encoder_optimizer`` (the encoder) and ``cpc_optimizer`` (W and, through the
    CURL module, the same encoder), both step on the one backward pass, so the encoder takes two Adam
    steps per CURL loss, each with its own moment estimates (about twice the step size). Off by
    default: the published description is one optimizer step per loss. The second optimizer is saved
    and restored with the algorithm.

    Logs: ``loss`` and ``accuracy`` (top-1: the positive key scores highest).
    """

    name: ClassVar[str] = "curl"
    summary: ClassVar[str] = "bilinear InfoNCE of anchor and momentum key, in-batch negatives, no temperature"
    second_input: ClassVar[str] = "target encoder(obs_pos)"
    citation: ClassVar[str] = "Srinivas, Laskin & Abbeel 2020, arXiv 2004.04136"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        latent_dim: int | None = None,
        head_tau: float = 0.05,
        w_init: str = "uniform",
        official_double_step: bool = False,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        if latent_dim is not None and latent_dim < 1:
            raise ValueError(f"latent_dim must be None or >= 1, got {latent_dim}")
        self._set_projector(nn.Identity() if latent_dim is None else nn.Linear(self.feature_dim, latent_dim), head_tau)
        self.critic = BilinearCritic(latent_dim or self.feature_dim, init=w_init)
        self._finish_init()
        self.official_double_step = bool(official_double_step)
        self.encoder_optimizer: torch.optim.Optimizer | None = None
        if self.official_double_step:  # the official code's encoder_optimizer: encoder only, lr and betas alike
            self.encoder_optimizer = torch.optim.Adam(
                self.encoder.parameters(), lr=self.lr, betas=(0.9, 0.999), fused=True
            )

    def logits(self, batch: AuxBatch) -> torch.Tensor:
        """The ``(B, B)`` row-max-shifted logits; the diagonal holds the positive pairs."""
        anchor = self.projector(self.online_features(batch))
        with torch.no_grad():
            key = self.target_projector(self.target_encoder(batch.obs_pos))
        logits = self.critic(anchor, key)
        return logits - logits.max(dim=1, keepdim=True).values

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self.logits(batch)
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, labels)
        return loss, {"loss": loss.item(), "accuracy": top1_accuracy(logits.detach(), labels)}

    def _after_step(self) -> None:
        if self.encoder_optimizer is not None:
            self.encoder_optimizer.step()  # the same gradients, a second Adam state (official update_cpc)

    def optimizer_names(self) -> list[str]:
        return ["optimizer", "encoder_optimizer"] if self.encoder_optimizer is not None else ["optimizer"]
