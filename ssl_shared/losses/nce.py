"""Noise-contrastive estimation (Gutmann & Hyvarinen 2010, AISTATS).

A model density ``p_model`` is fitted by logistic regression that tells ``T_d`` data samples ``x`` from
``T_n = nu * T_d`` samples ``y`` of a known noise density ``p_noise``. The classifier's logit is the
log-ratio::

    G(u) = log p_model(u) - log(nu * p_noise(u)),      h(u) = sigmoid(G(u))
    J    = -1/T_d [ sum_t log h(x_t) + sum_t log(1 - h(y_t)) ]

with ``nu = T_n / T_d`` (the general ``nu`` is spelled out in Gutmann & Hyvarinen 2012, JMLR; the 2010
paper's ``1/(2T)`` normalisation for ``nu = 1`` differs only by a constant factor). For ``nu = 1`` this
is the binary cross-entropy of the logistic-regression form of noise-contrastive estimation
(Gutmann & Hyvarinen 2010)::

    L_NCE = -1/N sum_i [ log sigmoid(l(x_i)) + log(1 - sigmoid(l(x~_i))) ],  l(u) = log p(u) - log q(u)

The caller evaluates the densities (log p_model may be unnormalised, with a learned log-normaliser
folded in) and passes log-densities; ``nu`` is taken from the sample counts.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses._checks import check_same_shape


def nce_loss(
    data_log_model: Tensor,
    data_log_noise: Tensor,
    noise_log_model: Tensor,
    noise_log_noise: Tensor,
) -> Tensor:
    """NCE objective ``J`` from log-densities of data and noise samples.

    Args:
        data_log_model: ``log p_model(x_t)`` for the ``T_d`` data samples (any shape).
        data_log_noise: ``log p_noise(x_t)``, same shape as ``data_log_model``.
        noise_log_model: ``log p_model(y_t)`` for the ``T_n`` noise samples (any shape).
        noise_log_noise: ``log p_noise(y_t)``, same shape as ``noise_log_model``.

    Returns:
        Scalar ``J`` with ``nu = T_n / T_d``.
    """
    check_same_shape("data_log_model", data_log_model, "data_log_noise", data_log_noise)
    check_same_shape("noise_log_model", noise_log_model, "noise_log_noise", noise_log_noise)
    num_data = data_log_model.numel()
    num_noise = noise_log_model.numel()
    if num_data == 0 or num_noise == 0:
        raise ValueError(
            f"nce_loss needs at least one data and one noise sample, got {num_data} data and {num_noise} noise samples"
        )
    log_nu = math.log(num_noise / num_data)
    data_logit = data_log_model - data_log_noise - log_nu
    noise_logit = noise_log_model - noise_log_noise - log_nu
    # log(1 - sigmoid(g)) = logsigmoid(-g), numerically stable for large |g|.
    total = F.logsigmoid(data_logit).sum() + F.logsigmoid(-noise_logit).sum()
    return -total / num_data


class NCELoss(nn.Module):
    """Module form of :func:`nce_loss` (no parameters; for use inside ``nn.Sequential``-style code)."""

    def forward(
        self,
        data_log_model: Tensor,
        data_log_noise: Tensor,
        noise_log_model: Tensor,
        noise_log_noise: Tensor,
    ) -> Tensor:
        return nce_loss(data_log_model, data_log_noise, noise_log_model, noise_log_noise)
