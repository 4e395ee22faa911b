"""Instance discrimination with a memory bank (NPID; Wu, Xiong, Yu & Lin 2018, CVPR).

Every image ``i`` is its own class; class weights are replaced by a memory bank ``V`` of the
normalised embeddings ``v_i`` seen in earlier steps (non-parametric softmax), approximated by NCE
with ``m`` noise samples from the uniform distribution ``P_n = 1/n``:

    P(i | v) = exp(v_i . v / tau) / Z,     Z ~ n * mean_j exp(v_j . v / tau)   (estimated once, kept fixed)
    L = NCE( log P(i | f_i) vs log(m P_n) on the positive, log P(j | f_i) on m bank samples j )
    after the optimiser step: v_i <- normalize(0.5 v_i + 0.5 f_i)

The NCE objective is :func:`ssl_shared.losses.nce_loss` (``nu = m``); the ``m`` bank samples are drawn
once per batch and shared by all its images. Paper: 128-d embedding,
tau 0.07, m 4096, bank momentum 0.5.

Data-parallel runs behave as one process on the concatenated batch: the bank's own generator draws the
same noise rows on every process, ``Z`` is estimated from the noise scores of all processes, and every
process writes the indices and embeddings of all processes into its bank (the official code keeps one
bank for the whole batch), so the banks stay identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses import distributed, nce_loss
from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.exemplar import check_indices
from ssl_shared.methods.nce_normaliser import FixedNormaliser
from ssl_shared.methods.views import ViewConfig, augment_view
from ssl_shared.queues import MemoryBank


@dataclass
class NPIDConfig:
    # Wu et al. 2018: 128-d embedding, tau 0.07, 4096 noise samples, bank momentum 0.5.
    num_samples: int = 50000
    embedding_dim: int = 128
    temperature: float = 0.07
    num_negatives: int = 4096
    bank_momentum: float = 0.5
    views: ViewConfig = field(default_factory=lambda: ViewConfig(crop_scale=(0.2, 1.0)))

    def __post_init__(self) -> None:
        if self.num_samples < 2 or self.num_negatives < 1 or self.temperature <= 0:
            raise ValueError("need num_samples >= 2, num_negatives >= 1 and temperature > 0")


class NPID(SSLMethod):
    name: ClassVar[str] = "npid"
    family: ClassVar[str] = "contrastive"
    citation: ClassVar[str] = "Wu, Xiong, Yu & Lin 2018, arXiv 1805.01978"
    config_class: ClassVar[type] = NPIDConfig
    required_inputs: ClassVar[set[str]] = {"image", "index"}

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: NPIDConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        c = self.config
        self.embed = nn.Linear(feature_dim, c.embedding_dim)
        self.bank = MemoryBank(c.num_samples, c.embedding_dim, c.bank_momentum)
        self.normaliser = FixedNormaliser(c.num_samples)
        self._pending: tuple[Tensor, Tensor] | None = None

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        index = check_indices(batch["index"].to(x.device), self.config.num_samples, x.shape[0])
        f = F.normalize(self.embed(self.encode(augment_view(x, self.config.views))), dim=1)
        m = self.config.num_negatives
        positives = self.bank.get(index)
        noise = self.bank.sample(m)
        data_logits = (f * positives).sum(1) / self.config.temperature
        noise_logits = f @ noise.T / self.config.temperature
        self.normaliser.fix(noise_logits)
        log_p_data, log_p_noise = self.normaliser(data_logits), self.normaliser(noise_logits)
        log_uniform = -math.log(self.config.num_samples)
        loss = nce_loss(
            log_p_data, torch.full_like(log_p_data, log_uniform), log_p_noise, torch.full_like(log_p_noise, log_uniform)
        )
        self._pending = (index, f.detach())
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        if self._pending is not None:
            # Every process writes the indices and embeddings of all processes: the banks stay identical.
            index, f = self._pending
            self.bank.update(distributed.gather(index), distributed.gather(f))
            self._pending = None
