"""Supervised contrastive loss ``L_out`` (Khosla et al. 2020, NeurIPS, eq. 2).

arXiv 2004.11362, eq. 2. For anchors ``i`` in the
batch ``I`` of L2-normalised embeddings ``z`` (all augmented views, flattened), ``A(i) = I \\ {i}`` and
the positives ``P(i) = {p in A(i): y_p = y_i}``::

    L_out = sum_{i in I} -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau) )

The average over positives sits *outside* the log (``L_out``, the variant the paper recommends over
``L_in``). Like the official implementation this returns the **mean** over anchors instead of the sum.
Anchors with no positive (``|P(i)| = 0``) are left out of the mean; a batch where no anchor has a
positive gives 0 (attached to the graph). With labels ``[0..N-1, 0..N-1]`` (two views per image,
nothing else shared) ``L_out`` equals NT-Xent.

With ``gather_distributed=True`` the local anchors are contrasted with the embeddings (and labels) of
all processes (see :mod:`ssl_shared.losses.distributed`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses import distributed
from ssl_shared.losses._checks import check_labels, check_non_empty, check_positive, check_rank, zero_loss


def supcon_loss(
    embeddings: Tensor, labels: Tensor, temperature: float = 0.1, gather_distributed: bool = False
) -> Tensor:
    """Supervised contrastive loss ``L_out``, mean over anchors with at least one positive.

    Args:
        embeddings: (B, D), normalised inside; stack the views of a sample as separate rows.
        labels: (B,) integer labels (the same label for all views of a sample).
        temperature: ``tau`` > 0. Default 0.1, the value Khosla et al. (2020) report training with.
        gather_distributed: contrast with the embeddings of all processes.

    Returns:
        Scalar loss.
    """
    check_rank("embeddings", embeddings, 2)
    check_non_empty("embeddings", embeddings)
    check_labels(labels, embeddings)
    check_positive("temperature", temperature)
    anchors = F.normalize(embeddings, dim=1)
    contrast, contrast_labels = anchors, labels
    offset = 0
    if gather_distributed:
        offset = distributed.local_offset(anchors.shape[0])
        contrast = distributed.gather(anchors)
        contrast_labels = distributed.gather(labels)
    n = anchors.shape[0]
    local = torch.arange(n, device=anchors.device)
    is_self = torch.zeros(n, contrast.shape[0], dtype=torch.bool, device=anchors.device)
    is_self[local, offset + local] = True
    positive = (labels[:, None] == contrast_labels[None, :]) & ~is_self
    has_positive = positive.any(dim=1)
    if not bool(has_positive.any()):
        return zero_loss(embeddings)
    logits = (anchors @ contrast.T / temperature).masked_fill(is_self, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    # Zero out non-positives with where (not multiplication): log_prob is -inf on the diagonal.
    positive_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    per_anchor = -positive_log_prob[has_positive] / positive[has_positive].sum(dim=1)
    return per_anchor.mean()


class SupConLoss(nn.Module):
    """Module form of :func:`supcon_loss` (Khosla et al. 2020)."""

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return supcon_loss(embeddings, labels, self.temperature, self.gather_distributed)
