"""Pairwise distances and label masks used by the metric-learning losses."""

from __future__ import annotations

import torch
from torch import Tensor


def pairwise_squared_distances(x: Tensor) -> Tensor:
    """``D2[i, j] = ||x_i - x_j||_2^2`` for the rows of ``x`` (B, D) -> (B, B).

    Uses ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j`` clamped at 0 (rounding can make it slightly negative),
    with an exact zero diagonal.
    """
    sq_norms = x.pow(2).sum(dim=1)
    d2 = sq_norms[:, None] + sq_norms[None, :] - 2.0 * (x @ x.T)
    d2 = d2.clamp_min(0.0)
    return d2 * (1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))


def pairwise_distances(x: Tensor, squared: bool) -> Tensor:
    """Euclidean (``squared=False``) or squared Euclidean (``squared=True``) distance matrix.

    The square root is taken of ``max(D2, 1e-12)`` off the diagonal so that its gradient stays finite
    for coincident points; the diagonal is exactly 0.
    """
    d2 = pairwise_squared_distances(x)
    if squared:
        return d2
    off_diagonal = 1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
    return d2.clamp_min(1e-12).sqrt() * off_diagonal


def label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean (B, B) masks ``(positive, negative)`` from labels (B,).

    ``positive[i, j]``: same label and ``i != j``; ``negative[i, j]``: different labels.
    """
    same = labels[:, None] == labels[None, :]
    not_self = ~torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & not_self, ~same
