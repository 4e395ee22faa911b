"""SAC-AE: a regularised deterministic autoencoder as the auxiliary loss (Yarats et al. 2019)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective
from curl_agents.objectives.decoder import PixelDecoder


class ReconstructionObjective(AuxObjective):
    """SAC-AE's autoencoder loss on the critic's view (Yarats et al. 2019, arXiv 1910.01741):

        z = f(obs)
        x = floor(obs / 2^(8 - b)) / 2^b + U[0, 1) / 2^b - 0.5       (b = target_bits = 5)
        L = mean (decoder(z) - x)^2  +  latent_lambda * mean_i (1/2 * ||z_i||^2)

    plus L2 weight decay ``decoder_weight_decay`` on the decoder's parameters only (Adam's coupled
    ``weight_decay`` in the decoder's parameter group, as in SAC-AE's decoder optimizer). The target
    is SAC-AE's ``utils.preprocess_obs`` (5-bit quantisation with uniform dequantisation noise from
    the global torch RNG); ``target_bits=None`` uses ``obs / 255 - 0.5`` instead. Defaults: SAC-AE's
    ``denisyarats/pytorch_sac_ae`` (``train.py`` ``--decoder_latent_lambda 1e-6``,
    ``--decoder_weight_lambda 1e-7``; ``sac_ae.py::update_decoder``; ``utils.py::preprocess_obs``).

    What runs depends on the host algorithm, which supplies ``obs``: under ``SacAE`` (``--algo
    sac_ae``: no augmentation, tanh encoder) this is SAC-AE; under ``CURL(aux="reconstruction")``
    it is "RAD + AE loss" (random crops, CURL's encoder without tanh), not SAC-AE.

    Logs: ``loss``, ``reconstruction_mse``, ``latent_l2``.
    """

    name: ClassVar[str] = "reconstruction"
    summary: ClassVar[str] = (
        "SAC-AE's autoencoder loss: pixel MSE to a quantised target + latent L2, decoder weight decay"
    )
    second_input: ClassVar[str] = "obs itself"
    citation: ClassVar[str] = "Yarats et al. 2019, arXiv 1910.01741"

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
        target_bits: int | None = 5,
    ) -> None:
        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        if not latent_lambda >= 0 or not decoder_weight_decay >= 0:
            raise ValueError(
                f"latent_lambda and decoder_weight_decay must be >= 0, got {latent_lambda}, {decoder_weight_decay}"
            )
        if target_bits is not None and (isinstance(target_bits, bool) or not 1 <= target_bits <= 8):
            raise ValueError(f"target_bits must be None or an integer in 1..8, got {target_bits!r}")
        for attribute in ("obs_shape", "conv_output_shape", "convs"):
            if not hasattr(encoder, attribute):
                raise ValueError(f"reconstruction needs a PixelEncoder-like encoder with .{attribute}")
        self.latent_lambda = latent_lambda
        self.decoder_weight_decay = decoder_weight_decay
        self.target_bits = target_bits
        self.decoder = PixelDecoder(encoder.obs_shape, encoder.conv_output_shape, len(encoder.convs), self.feature_dim)
        self._finish_init()

    def param_groups(self) -> list[dict[str, Any]]:
        return [
            {"params": list(self.encoder.parameters()), "weight_decay": 0.0},
            {"params": list(self.decoder.parameters()), "weight_decay": self.decoder_weight_decay},
        ]

    def reconstruction_target(self, obs: torch.Tensor) -> torch.Tensor:
        """The decoder's target for ``obs`` in ``[0, 255]`` (see the class docstring)."""
        obs = obs.float()
        if self.target_bits is None:
            return obs / 255.0 - 0.5
        bins = 2**self.target_bits
        quantised = torch.floor(obs / 2 ** (8 - self.target_bits)) / bins
        return quantised + torch.rand_like(quantised) / bins - 0.5

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        z = self.online_features(batch)
        target = self.reconstruction_target(batch.obs)
        reconstruction = F.mse_loss(self.decoder(z), target)
        latent = 0.5 * z.pow(2).sum(dim=1).mean()
        loss = reconstruction + self.latent_lambda * latent
        return loss, {"loss": loss.item(), "reconstruction_mse": reconstruction.item(), "latent_l2": latent.item()}
