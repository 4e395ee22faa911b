"""MoCo as an auxiliary loss: InfoNCE against a FIFO queue of momentum keys (He et al., CVPR 2020;
MoCo v2, Chen et al. 2020)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective
from ssl_shared.heads import ProjectionHead
from ssl_shared.losses import info_nce_loss
from ssl_shared.queues import KeyQueue


class MocoObjective(AuxObjective):
    """InfoNCE with queued negatives (MoCo, eq. 1):

        q = normalize(g(f(obs))),   k = sg(normalize(g_bar(f_bar(obs_pos))))
        L = -1/B * sum_i log( exp(q_i.k_i/tau) / (exp(q_i.k_i/tau) + sum_{n in queue} exp(q_i.n/tau)) )

    After each optimizer step the batch's keys ``k`` are enqueued (FIFO, ``queue_size`` keys, default
    4096). ``f_bar`` is the critic-target encoder (EMA by the algorithm) and ``g_bar`` an EMA copy of
    the projector moved with ``head_tau`` in :meth:`after_target_update`. The projector is MoCo v2's
    MLP head (Linear-ReLU-Linear, no BatchNorm), with MoCo v2's temperature 0.2 (MoCo v1: 0.07 with a
    linear head).

    Logs: ``loss`` and ``accuracy`` (top-1: the positive key beats every queued key).
    """

    name: ClassVar[str] = "moco"
    summary: ClassVar[str] = "cosine InfoNCE against a FIFO queue of momentum keys"
    second_input: ClassVar[str] = "target encoder + EMA projector (obs_pos)"
    citation: ClassVar[str] = "He et al. 2020, arXiv 1911.05722; Chen, Fan, Girshick & He 2020, arXiv 2003.04297"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        temperature: float = 0.2,
        queue_size: int = 4096,
        hidden_dim: int = 256,
        projection_dim: int = 128,
        head_tau: float = 0.05,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.temperature = temperature
        self._set_projector(ProjectionHead(self.feature_dim, hidden_dim, projection_dim, batch_norm=False), head_tau)
        self.queue = KeyQueue(projection_dim, queue_size, generator=generator)
        self._pending_keys: torch.Tensor | None = None
        self._finish_init()

    def query_and_key(self, batch: AuxBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-norm queries (with gradient) and keys (without)."""
        query = F.normalize(self.projector(self.online_features(batch)), dim=1)
        with torch.no_grad():
            key = F.normalize(self.target_projector(self.target_encoder(batch.obs_pos)), dim=1)
        return query, key

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        query, key = self.query_and_key(batch)
        negatives = self.queue.keys.clone()
        loss = info_nce_loss(
            query, key, critic="cosine", temperature=self.temperature, negatives="queue", queue=negatives
        )
        with torch.no_grad():
            positive = (query * key).sum(dim=1)
            hardest_negative = (query @ negatives.T).max(dim=1).values
            accuracy = (positive > hardest_negative).float().mean()
        self._pending_keys = key
        return loss, {"loss": loss.item(), "accuracy": accuracy.item()}

    def _after_step(self) -> None:
        if self._pending_keys is not None:
            self.queue.enqueue(self._pending_keys)
            self._pending_keys = None
