"""Triplet loss (Schroff, Kalenichenko & Philbin 2015, FaceNet) with in-batch triplet mining.

arXiv 1503.03832: for an anchor ``x``, a positive ``x+``
(same class) and a negative ``x-`` (other class), with ``d(u, v) = ||f(u) - f(v)||_2^2``::

    L(x, x+, x-) = max(0, d(x, x+) - d(x, x-) + eps)

:func:`triplet_loss` takes explicit triplets. :func:`batch_triplet_loss` mines triplets from a labelled
batch with :func:`mine_triplets`:

* ``"batch_all"``: every valid triplet ``(a, p, n)`` with ``y_a = y_p``, ``a != p``, ``y_n != y_a``
  (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss"); memory O(B^3).
* ``"batch_hard"``: per anchor, the farthest positive and the closest negative (Hermans et al. 2017).
* ``"semi_hard"``: per anchor-positive pair, the closest negative that is still farther than the
  positive, ``d(a, p) < d(a, n) < d(a, p) + eps`` (Schroff et al. 2015, Sec. 3.2). Pairs with no
  negative in that band are skipped.

The loss is the mean of ``max(0, d_ap - d_an + eps)`` over the mined triplets, and 0 (still attached
to the graph) when the batch yields none.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssl_shared.losses._checks import (
    check_choice,
    check_labels,
    check_non_empty,
    check_non_negative,
    check_rank,
    check_same_shape,
    zero_loss,
)
from ssl_shared.losses._pairwise import label_masks, pairwise_distances

MINING_MODES = ("batch_all", "batch_hard", "semi_hard")


def triplet_loss(
    anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, squared: bool = True
) -> Tensor:
    """Mean triplet loss over ``B`` explicit triplets.

    Args:
        anchor, positive, negative: (B, D) embeddings.
        margin: ``eps`` >= 0.
        squared: squared Euclidean distance (FaceNet, the default) or plain Euclidean distance.

    Returns:
        Scalar ``mean_i max(0, d(a_i, p_i) - d(a_i, n_i) + margin)``.
    """
    check_rank("anchor", anchor, 2)
    check_non_empty("anchor", anchor)
    check_same_shape("anchor", anchor, "positive", positive)
    check_same_shape("anchor", anchor, "negative", negative)
    check_non_negative("margin", margin)
    d_ap = _row_distance(anchor, positive, squared)
    d_an = _row_distance(anchor, negative, squared)
    return (d_ap - d_an + margin).clamp_min(0.0).mean()


def mine_triplets(distances: Tensor, labels: Tensor, mining: str, margin: float) -> Tensor:
    """Indices (T, 3) of the triplets ``(anchor, positive, negative)`` selected by ``mining``.

    Args:
        distances: (B, B) anchor-to-sample distances (only read, never differentiated).
        labels: (B,) class labels.
        mining: one of ``"batch_all"``, ``"batch_hard"``, ``"semi_hard"`` (see the module docstring).
        margin: ``eps`` >= 0, used by ``"semi_hard"`` to bound the band of negatives.
    """
    check_choice("mining", mining, MINING_MODES)
    check_rank("distances", distances, 2)
    check_labels(labels, distances)
    check_non_negative("margin", margin)
    d = distances.detach()
    positive, negative = label_masks(labels)
    if mining == "batch_all":
        valid = positive[:, :, None] & negative[:, None, :]
        return valid.nonzero()
    if mining == "batch_hard":
        usable = positive.any(dim=1) & negative.any(dim=1)
        hardest_pos = d.masked_fill(~positive, float("-inf")).argmax(dim=1)
        hardest_neg = d.masked_fill(~negative, float("inf")).argmin(dim=1)
        anchors = torch.arange(d.shape[0], device=d.device)
        return torch.stack([anchors, hardest_pos, hardest_neg], dim=1)[usable]
    # semi_hard: for every (a, p), negatives n with d_ap < d_an < d_ap + margin; take the closest.
    d_ap = d[:, :, None]
    d_an = d[:, None, :]
    in_band = positive[:, :, None] & negative[:, None, :] & (d_an > d_ap) & (d_an < d_ap + margin)
    closest = d_an.expand_as(in_band).masked_fill(~in_band, float("inf")).argmin(dim=2)
    pairs = in_band.any(dim=2).nonzero()
    return torch.cat([pairs, closest[pairs[:, 0], pairs[:, 1]][:, None]], dim=1)


def batch_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 1.0,
    mining: str = "batch_hard",
    squared: bool = True,
) -> Tensor:
    """Triplet loss with triplets mined from a labelled batch.

    Args:
        embeddings: (B, D).
        labels: (B,) integer class labels.
        margin: ``eps`` >= 0.
        mining: ``"batch_all"``, ``"batch_hard"`` or ``"semi_hard"``.
        squared: squared Euclidean distance (FaceNet, the default) or plain Euclidean distance.

    Returns:
        Scalar mean of ``max(0, d(a, p) - d(a, n) + margin)`` over the mined triplets
        (0 if none were mined).
    """
    check_rank("embeddings", embeddings, 2)
    check_non_empty("embeddings", embeddings)
    check_labels(labels, embeddings)
    check_choice("mining", mining, MINING_MODES)
    check_non_negative("margin", margin)
    distances = pairwise_distances(embeddings, squared=squared)
    triplets = mine_triplets(distances, labels, mining, margin)
    if triplets.shape[0] == 0:
        return zero_loss(embeddings)
    a, p, n = triplets.unbind(dim=1)
    return (distances[a, p] - distances[a, n] + margin).clamp_min(0.0).mean()


def _row_distance(x: Tensor, y: Tensor, squared: bool) -> Tensor:
    squared_distance = (x - y).pow(2).sum(dim=1)
    return squared_distance if squared else squared_distance.clamp_min(1e-12).sqrt()


class TripletLoss(nn.Module):
    """Module form of :func:`batch_triplet_loss` (embeddings + labels, mined triplets)."""

    def __init__(self, margin: float = 1.0, mining: str = "batch_hard", squared: bool = True) -> None:
        super().__init__()
        check_non_negative("margin", margin)
        check_choice("mining", mining, MINING_MODES)
        self.margin = margin
        self.mining = mining
        self.squared = squared

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return batch_triplet_loss(embeddings, labels, self.margin, self.mining, self.squared)
