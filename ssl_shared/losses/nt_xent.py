"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020).

arXiv 2002.05709, eq. 1. The ``2N`` projections of ``N`` images under
two augmentations are stacked as ``z = [z_a; z_b]``, so the positive of ``i`` is ``i + N`` (and of
``i + N`` is ``i``)::

    S_ij = z_i.z_j / (||z_i|| ||z_j||)                                          (8)
    l_ij = -log( exp(S_ij / tau) / sum_{k=1}^{2N} 1[k != i] exp(S_ik / tau) )  (9)
    L    = 1/(2N) sum_{i=1}^{N} [ l_{i,i+N} + l_{i+N,i} ]                      (10)

Every anchor is contrasted with the ``2N - 1`` other views (1 positive, ``2N - 2`` negatives). The
notes index positive pairs as ``(2k-1, 2k)``; stacking ``[z_a; z_b]`` is the same loss with the views
reordered.

With ``gather_distributed=True`` each process's local anchors are contrasted with the views of all
processes (global negatives); the result is the mean over the local ``2n`` anchors, whose average over
processes equals the single-process loss on the concatenated batch (see
:mod:`ssl_shared.losses.distributed`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses import distributed
from ssl_shared.losses._checks import check_non_empty, check_positive, check_rank, check_same_shape


def nt_xent_loss(z_a: Tensor, z_b: Tensor, temperature: float = 0.5, gather_distributed: bool = False) -> Tensor:
    """NT-Xent loss of two views.

    Args:
        z_a: (N, D) projections of the first view.
        z_b: (N, D) projections of the second view; row ``i`` is the positive of ``z_a[i]``.
        temperature: ``tau`` > 0. Default 0.5, SimCLR's CIFAR-10 value (its ImageNet runs use 0.1).
        gather_distributed: use the views of all processes as negatives.

    Returns:
        Scalar ``L`` of eq. 10 (mean over the local ``2N`` anchors).
    """
    check_rank("z_a", z_a, 2)
    check_non_empty("z_a", z_a)
    check_same_shape("z_a", z_a, "z_b", z_b)
    check_positive("temperature", temperature)
    n = z_a.shape[0]
    z_a = F.normalize(z_a, dim=1)
    z_b = F.normalize(z_b, dim=1)
    anchors = torch.cat([z_a, z_b], dim=0)  # local (2n, D)
    offset = 0
    if gather_distributed:
        offset = distributed.local_offset(n)
        z_a, z_b = distributed.gather(z_a), distributed.gather(z_b)
    total = z_a.shape[0]  # N over all processes
    candidates = torch.cat([z_a, z_b], dim=0)  # (2 total, D)
    logits = anchors @ candidates.T / temperature
    local = torch.arange(n, device=z_a.device)
    self_index = torch.cat([offset + local, total + offset + local])
    positive_index = torch.cat([total + offset + local, offset + local])
    rows = torch.arange(2 * n, device=z_a.device)
    logits = logits.masked_fill(_one_hot_mask(rows, self_index, logits.shape), float("-inf"))
    return F.cross_entropy(logits, positive_index)


def _one_hot_mask(rows: Tensor, cols: Tensor, shape: torch.Size) -> Tensor:
    mask = torch.zeros(shape, dtype=torch.bool, device=rows.device)
    mask[rows, cols] = True
    return mask


class NTXentLoss(nn.Module):
    """Module form of :func:`nt_xent_loss` (SimCLR, Chen et al. 2020)."""

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        return nt_xent_loss(z_a, z_b, self.temperature, self.gather_distributed)
