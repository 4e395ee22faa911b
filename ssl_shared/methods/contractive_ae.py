"""Contractive autoencoder (Rifai et al. 2011, ICML).

    L = 1/N sum_i [ || x_i - g(h(x_i)) ||^2 / (C H W)  +  lambda || J_h(x_i) ||_F^2 ]
    || J_h(x) ||_F^2 = sum_j sum_k ( d h_j(x) / d x_k )^2

``h`` is the backbone (the code), ``g`` a :class:`ConvDecoder`. Rifai et al. use a single sigmoid
layer, where the norm has the closed form ``sum_j (h_j (1 - h_j))^2 sum_k W_jk^2``; for an arbitrary
backbone the penalty is computed here by autograd with ``create_graph=True`` (double backward):

* ``penalty="exact"``: one backward pass per code unit ``j`` gives row ``j`` of every sample's
  Jacobian, ``d (sum_b h_bj) / d x_b``. This is the exact per-sample Jacobian when samples do not
  interact, i.e. the backbone has no batch-norm in training mode; with batch-norm in training mode it
  also contains the cross-sample terms of the batch statistics.
* ``penalty="hutchinson"``: the unbiased estimate ``E_v || J^T v ||^2`` with ``v ~ N(0, I)`` over
  ``num_projections`` draws; ``num_projections`` backward passes instead of ``feature_dim``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod
from ssl_shared.methods.decoder import ConvDecoder, backbone_in_channels

PENALTIES = ("exact", "hutchinson")


@dataclass
class ContractiveAutoencoderConfig:
    # Rifai et al. 2011 pick lambda by validation (values around 0.1 on MNIST-sized inputs) and compute
    # the norm exactly (closed form of one sigmoid layer). For a deep backbone "exact" costs feature_dim
    # double-backward passes per step (orders of magnitude slower than one), so the default is the
    # unbiased Hutchinson estimate with 4 projections.
    penalty_weight: float = 0.1
    penalty: str = "hutchinson"
    num_projections: int = 4
    decoder_channels: int = 64
    in_channels: int | None = None

    def __post_init__(self) -> None:
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if self.penalty_weight < 0 or self.num_projections < 1:
            raise ValueError(
                f"need penalty_weight >= 0 and num_projections >= 1, got {self.penalty_weight}, {self.num_projections}"
            )


def jacobian_frobenius_sq(code: Tensor, inputs: Tensor) -> Tensor:
    """``sum_j sum_k (d code_j / d inputs_k)^2`` summed over the batch, differentiable (exact)."""
    total = code.new_zeros(())
    for j in range(code.shape[1]):
        (grad,) = torch.autograd.grad(code[:, j].sum(), inputs, create_graph=True)
        total = total + grad.pow(2).sum()
    return total


def hutchinson_frobenius_sq(
    code: Tensor, inputs: Tensor, num_projections: int, generator: torch.Generator | None = None
) -> Tensor:
    """Unbiased estimate of :func:`jacobian_frobenius_sq`: mean over ``v ~ N(0, I)`` of ``||J^T v||^2``."""
    total = code.new_zeros(())
    for _ in range(num_projections):
        v = torch.randn(code.shape, generator=generator, device=code.device)
        (grad,) = torch.autograd.grad((code * v).sum(), inputs, create_graph=True)
        total = total + grad.pow(2).sum()
    return total / num_projections


class ContractiveAutoencoder(SSLMethod):
    name: ClassVar[str] = "contractive_ae"
    family: ClassVar[str] = "self-prediction"
    citation: ClassVar[str] = "Rifai, Vincent, Muller, Glorot & Bengio 2011, ICML"
    config_class: ClassVar[type] = ContractiveAutoencoderConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: ContractiveAutoencoderConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        channels = backbone_in_channels(backbone, self.config.in_channels)
        self.decoder = ConvDecoder(feature_dim, channels, self.config.decoder_channels)

    def contractive_penalty(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the code of ``x`` and the batch mean of ``|| J_h(x_i) ||_F^2``."""
        x = x.detach().requires_grad_(True)
        code = self.encode(x)
        if self.config.penalty == "exact":
            total = jacobian_frobenius_sq(code, x)
        else:
            total = hutchinson_frobenius_sq(code, x, self.config.num_projections)
        return code, total / x.shape[0]

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        code, penalty = self.contractive_penalty(x)
        recon = F.mse_loss(self.decoder(code, x.shape[-2:]), x)
        loss = recon + self.config.penalty_weight * penalty
        return loss, {"loss": loss.item(), "reconstruction": recon.item(), "jacobian_fro_sq": penalty.item()}
