"""SAC-AE: a regularised deterministic autoencoder as the auxiliary loss (Yarats et al. 2019)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.aux.base import AuxBatch, AuxObjective
from curl_agents.aux.decoder import PixelDecoder


class ReconstructionObjective(AuxObjective):
    """Pixel reconstruction of the critic's view with a latent L2 penalty (SAC-AE):

        z = f(obs),   x = obs / 255 - 0.5
        L = mean (decoder(z) - x)^2  +  latent_lambda * mean_i (1/2 * ||z_i||^2)

    plus L2 weight decay ``decoder_weight_decay`` on the decoder's parameters only (Adam's coupled
    ``weight_decay`` in the decoder's parameter group, as in SAC-AE's decoder optimizer).
    SAC-AE defaults: latent_lambda 1e-6, decoder weight decay 1e-7
    (``denisyarats/pytorch_sac_ae``, ``sac_ae.py::update_decoder``). Simplification: the target is
    ``obs`` scaled to [-0.5, 0.5] directly; SAC-AE first quantises to 5 bits and adds dequantisation
    noise.

    Logs: ``loss``, ``reconstruction_mse``, ``latent_l2``.
    """

    name = "reconstruction"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        latent_lambda: float = 1e-6,
        decoder_weight_decay: float = 1e-7,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        if not latent_lambda >= 0 or not decoder_weight_decay >= 0:
            raise ValueError(
                f"latent_lambda and decoder_weight_decay must be >= 0, got {latent_lambda}, {decoder_weight_decay}"
            )
        for attribute in ("obs_shape", "conv_output_shape", "convs"):
            if not hasattr(encoder, attribute):
                raise ValueError(f"reconstruction needs a PixelEncoder-like encoder with .{attribute}")
        self.latent_lambda = latent_lambda
        self.decoder_weight_decay = decoder_weight_decay
        self.decoder = PixelDecoder(encoder.obs_shape, encoder.conv_output_shape, len(encoder.convs), self.feature_dim)
        self._finish_init()

    def param_groups(self) -> list[dict[str, Any]]:
        return [
            {"params": list(self.encoder.parameters()), "weight_decay": 0.0},
            {"params": list(self.decoder.parameters()), "weight_decay": self.decoder_weight_decay},
        ]

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        z = self.encoder(batch.obs)
        target = batch.obs.float() / 255.0 - 0.5
        reconstruction = F.mse_loss(self.decoder(z), target)
        latent = 0.5 * z.pow(2).sum(dim=1).mean()
        loss = reconstruction + self.latent_lambda * latent
        return loss, {"loss": loss.item(), "reconstruction_mse": reconstruction.item(), "latent_l2": latent.item()}
