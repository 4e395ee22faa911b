"""Lifted structured loss, smooth version (Song, Xiang, Jegelka & Savarese 2016, CVPR).

"Deep Metric Learning via Lifted Structured Feature Embedding" (arXiv 1511.06452). With
``D_ij = ||f(x_i) - f(x_j)||_2``, the set ``P`` of positive pairs (same label) and ``N`` of negative pairs (different labels) in a batch::

    J_ij = D_ij + log( sum_{(i,k) in N} exp(eps - D_ik) + sum_{(j,l) in N} exp(eps - D_jl) )
    J    = 1 / (2 |P|) * sum_{(i,j) in P} max(0, J_ij)^2

Every positive pair is contrasted with all negatives of both of its ends, so the whole ``B x B``
distance matrix is used. ``J_ij`` is symmetric, so summing over unordered pairs ``i < j`` with ``|P|``
unordered pairs gives the same value as over ordered pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssl_shared.losses._checks import (
    check_labels,
    check_non_empty,
    check_non_negative,
    check_rank,
    zero_loss,
)
from ssl_shared.losses._pairwise import label_masks, pairwise_distances


def lifted_structured_loss(embeddings: Tensor, labels: Tensor, margin: float = 1.0) -> Tensor:
    """Smooth lifted structured loss of a labelled batch.

    Args:
        embeddings: (B, D).
        labels: (B,) integer class labels.
        margin: ``eps`` >= 0.

    Returns:
        Scalar ``J`` (see the module docstring); 0 (attached to the graph) when the batch has no
        positive pair or no negative pair.
    """
    check_rank("embeddings", embeddings, 2)
    check_non_empty("embeddings", embeddings)
    check_labels(labels, embeddings)
    check_non_negative("margin", margin)
    distances = pairwise_distances(embeddings, squared=False)
    positive, negative = label_masks(labels)
    pos_i, pos_j = torch.triu(positive, diagonal=1).nonzero().unbind(dim=1)
    if pos_i.numel() == 0 or not bool(negative.any()):
        return zero_loss(embeddings)
    # Row r holds eps - D_rk for the negatives k of r; non-negatives are a very negative finite number
    # (not -inf) so that logsumexp and its gradient stay finite.
    very_negative = torch.finfo(embeddings.dtype).min
    neg_terms = (margin - distances).masked_fill(~negative, very_negative)
    both_ends = torch.cat([neg_terms[pos_i], neg_terms[pos_j]], dim=1)
    j_ij = distances[pos_i, pos_j] + torch.logsumexp(both_ends, dim=1)
    return j_ij.clamp_min(0.0).pow(2).sum() / (2.0 * pos_i.numel())


class LiftedStructuredLoss(nn.Module):
    """Module form of :func:`lifted_structured_loss` holding the margin (Song et al. 2016)."""

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        check_non_negative("margin", margin)
        self.margin = margin

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return lifted_structured_loss(embeddings, labels, self.margin)
