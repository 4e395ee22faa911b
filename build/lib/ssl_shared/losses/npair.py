"""Multi-class N-pair loss (Sohn 2016, NeurIPS, "Improved Deep Metric Learning with Multi-class N-pair
Loss Objective").

In Sohn 2016 the batch holds ``N`` pairs
``(x_i, x_i+)`` from ``N`` different classes; for anchor ``i`` the positive is ``x_i+`` and the other
``N - 1`` positives ``x_j+`` are its negatives. With ``f_i = f(x_i)`` and ``f_j+ = f(x_j+)``::

    L_i = log(1 + sum_{j != i} exp(f_i . f_j+ - f_i . f_i+))
        = -log( exp(f_i . f_i+) / sum_j exp(f_i . f_j+) )
    L   = 1/N sum_i L_i  +  lambda * 1/N sum_i (||f_i||^2 + ||f_i+||^2)

i.e. a cross-entropy over the ``N x N`` dot-product matrix with the diagonal as targets. The
embeddings are not normalised; Sohn (2016) instead keeps their norm small with the optional L2
penalty ``lambda`` (``l2_weight``, off by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses._checks import check_non_empty, check_non_negative, check_rank, check_same_shape


def npair_loss(anchors: Tensor, positives: Tensor, l2_weight: float = 0.0) -> Tensor:
    """Multi-class N-pair loss.

    Args:
        anchors: (N, D) embeddings ``f_i``, one per class.
        positives: (N, D) embeddings ``f_i+``, row ``i`` of the same class as ``anchors[i]``; all rows
            of different classes.
        l2_weight: ``lambda`` >= 0 for the embedding-norm penalty; 0 disables it.

    Returns:
        Scalar ``L`` (see the module docstring).
    """
    check_rank("anchors", anchors, 2)
    check_non_empty("anchors", anchors)
    check_same_shape("anchors", anchors, "positives", positives)
    check_non_negative("l2_weight", l2_weight)
    logits = anchors @ positives.T
    targets = torch.arange(anchors.shape[0], device=anchors.device)
    loss = F.cross_entropy(logits, targets)
    if l2_weight > 0:
        loss = loss + l2_weight * (anchors.pow(2).sum(dim=1) + positives.pow(2).sum(dim=1)).mean()
    return loss


class NPairLoss(nn.Module):
    """Module form of :func:`npair_loss` holding the L2 weight (Sohn 2016)."""

    def __init__(self, l2_weight: float = 0.0) -> None:
        super().__init__()
        check_non_negative("l2_weight", l2_weight)
        self.l2_weight = l2_weight

    def forward(self, anchors: Tensor, positives: Tensor) -> Tensor:
        return npair_loss(anchors, positives, self.l2_weight)
