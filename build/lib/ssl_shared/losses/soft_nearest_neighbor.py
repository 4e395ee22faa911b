"""Soft nearest neighbour loss (Frosst, Papernot & Hinton 2019, ICML, "Analyzing and Improving
Representations with the Soft Nearest Neighbor Loss"; after Salakhutdinov & Hinton 2007).

arXiv 1902.01889. For a labelled batch
``{(x_i, y_i)}`` with distance ``d_ij = ||x_i - x_j||_2^2`` (squared Euclidean, as in Frosst et al.)
and temperature ``T``::

    L_snn = -1/B sum_i log( sum_{j != i, y_j = y_i} exp(-d_ij / T) / sum_{k != i} exp(-d_ik / T) )

It measures how entangled the classes are: low when every point's soft neighbours share its label.
An anchor whose class has no other member in the batch has an empty numerator (log 0); such anchors
are left out of the mean, and a batch with no such pair gives 0 (attached to the graph).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssl_shared.losses._checks import check_labels, check_non_empty, check_positive, check_rank, zero_loss
from ssl_shared.losses._pairwise import label_masks, pairwise_squared_distances


def soft_nearest_neighbor_loss(embeddings: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """Soft nearest neighbour loss, mean over anchors that have a same-label partner.

    Args:
        embeddings: (B, D).
        labels: (B,) integer class labels.
        temperature: ``T`` > 0 (Frosst et al. also optimise it; here it is fixed).

    Returns:
        Scalar ``L_snn``.
    """
    check_rank("embeddings", embeddings, 2)
    check_non_empty("embeddings", embeddings)
    check_labels(labels, embeddings)
    check_positive("temperature", temperature)
    positive, _ = label_masks(labels)
    has_positive = positive.any(dim=1)
    if not bool(has_positive.any()):
        return zero_loss(embeddings)
    # Keep only anchors with a partner: an all -inf logsumexp row would poison the gradient with NaN.
    scores = (-pairwise_squared_distances(embeddings) / temperature)[has_positive]
    is_self = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)[has_positive]
    log_numerator = torch.logsumexp(scores.masked_fill(~positive[has_positive], float("-inf")), dim=1)
    log_denominator = torch.logsumexp(scores.masked_fill(is_self, float("-inf")), dim=1)
    return -(log_numerator - log_denominator).mean()


class SoftNearestNeighborLoss(nn.Module):
    """Module form of :func:`soft_nearest_neighbor_loss` holding the temperature."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        self.temperature = temperature

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return soft_nearest_neighbor_loss(embeddings, labels, self.temperature)
