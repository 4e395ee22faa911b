"""Negative-cosine regression losses without negatives: BYOL and SimSiam.

BYOL (Grill et al. 2020, arXiv 2006.07733, eq. 2): the online
prediction ``p = q_theta(z_theta)`` regresses the target projection ``z' = z'_xi`` of the other view;
both are L2-normalised and the target gets no gradient (``sg``, stop-gradient)::

    L(p, z') = || p/||p|| - sg(z')/||z'|| ||_2^2 = 2 - 2 * <p, z'> / (||p|| ||z'||)

BYOL symmetrises by swapping the views, ``L(p_1, z'_2) + L(p_2, z'_1)`` (:func:`symmetric_byol_loss`).

SimSiam (Chen & He 2021, eq. 1-2) uses the negative cosine similarity
``D(p, z) = -<p, sg(z)> / (||p|| ||z||)`` symmetrically::

    L = D(p_1, z_2) / 2 + D(p_2, z_1) / 2

``2 - 2 cos = 2 + 2 D``: the two differ by an affine map, so they have the same minimisers and
gradients up to a factor 2 (BYOL's range is [0, 4], SimSiam's [-1, 1]).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses._checks import check_non_empty, check_rank, check_same_shape


def _cosine(prediction: Tensor, target: Tensor) -> Tensor:
    """Row-wise cosine similarity with the target detached (stop-gradient)."""
    check_rank("prediction", prediction, 2)
    check_non_empty("prediction", prediction)
    check_same_shape("prediction", prediction, "target", target)
    return (F.normalize(prediction, dim=1) * F.normalize(target.detach(), dim=1)).sum(dim=1)


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """BYOL regression loss ``mean_i (2 - 2 cos(p_i, sg(z'_i)))``.

    Args:
        prediction: (B, D) online predictions ``p``.
        target: (B, D) target projections ``z'`` (detached inside).
    """
    return (2.0 - 2.0 * _cosine(prediction, target)).mean()


def symmetric_byol_loss(p_1: Tensor, p_2: Tensor, z_1: Tensor, z_2: Tensor) -> Tensor:
    """BYOL's symmetrised loss ``L(p_1, z_2) + L(p_2, z_1)`` (Grill et al. 2020)."""
    return byol_loss(p_1, z_2) + byol_loss(p_2, z_1)


def simsiam_loss(p_1: Tensor, p_2: Tensor, z_1: Tensor, z_2: Tensor) -> Tensor:
    """SimSiam loss ``D(p_1, z_2) / 2 + D(p_2, z_1) / 2`` with ``D = -cos`` and stop-gradient on ``z``.

    Args:
        p_1, p_2: (B, D) predictor outputs of view 1 and view 2.
        z_1, z_2: (B, D) projector outputs of view 1 and view 2 (detached inside).
    """
    return -0.5 * _cosine(p_1, z_2).mean() - 0.5 * _cosine(p_2, z_1).mean()


class BYOLLoss(nn.Module):
    """Module form of :func:`symmetric_byol_loss` (Grill et al. 2020)."""

    def forward(self, p_1: Tensor, p_2: Tensor, z_1: Tensor, z_2: Tensor) -> Tensor:
        return symmetric_byol_loss(p_1, p_2, z_1, z_2)


class SimSiamLoss(nn.Module):
    """Module form of :func:`simsiam_loss` (Chen & He 2021)."""

    def forward(self, p_1: Tensor, p_2: Tensor, z_1: Tensor, z_2: Tensor) -> Tensor:
        return simsiam_loss(p_1, p_2, z_1, z_2)
