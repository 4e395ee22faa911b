"""Margin contrastive loss on labelled pairs (Chopra, Hadsell & LeCun 2005).

Chopra, Hadsell & LeCun 2005 (CVPR), "Learning a Similarity Metric Discriminatively": for a pair with embeddings
``f_i = f(x_i)``, ``f_j = f(x_j)`` and distance ``d_ij = ||f_i - f_j||_2``::

    L(i, j) = 1[y_i = y_j] * d_ij^2 + 1[y_i != y_j] * max(0, eps - d_ij)^2

Same-class pairs are pulled together; different-class pairs are pushed apart until they are at least
``eps`` (the margin) apart, after which they contribute nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssl_shared.losses._checks import check_non_empty, check_non_negative, check_rank, check_same_shape


def contrastive_pair_loss(emb_a: Tensor, emb_b: Tensor, same: Tensor, margin: float = 1.0) -> Tensor:
    """Mean margin contrastive loss over ``B`` pairs.

    Args:
        emb_a: (B, D) embeddings of the first element of each pair.
        emb_b: (B, D) embeddings of the second element.
        same: (B,) bool (or 0/1) tensor, ``True`` where the pair shares a label (``y_i = y_j``).
        margin: ``eps`` >= 0, the distance beyond which dissimilar pairs stop being penalised.

    Returns:
        Scalar ``mean_pairs [same * d^2 + (1 - same) * max(0, margin - d)^2]``.
    """
    check_rank("emb_a", emb_a, 2)
    check_same_shape("emb_a", emb_a, "emb_b", emb_b)
    check_non_empty("emb_a", emb_a)
    check_rank("same", same, 1)
    if same.shape[0] != emb_a.shape[0]:
        raise ValueError(f"same must have one entry per pair, got {same.shape[0]} for {emb_a.shape[0]} pairs")
    check_non_negative("margin", margin)
    diff = emb_a - emb_b
    squared = diff.pow(2).sum(dim=1)
    # sqrt of a clamped value keeps the gradient finite when two embeddings coincide.
    distance = squared.clamp_min(1e-12).sqrt()
    is_same = same.to(dtype=torch.bool)
    per_pair = torch.where(is_same, squared, (margin - distance).clamp_min(0.0).pow(2))
    return per_pair.mean()


class ContrastivePairLoss(nn.Module):
    """Module form of :func:`contrastive_pair_loss` holding the margin (Chopra et al. 2005)."""

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        check_non_negative("margin", margin)
        self.margin = margin

    def forward(self, emb_a: Tensor, emb_b: Tensor, same: Tensor) -> Tensor:
        return contrastive_pair_loss(emb_a, emb_b, same, margin=self.margin)
