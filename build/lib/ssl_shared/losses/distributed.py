"""Gradient-preserving all-gather for contrastive losses across ``torch.distributed`` processes.

Contrastive losses get better with more negatives. With data parallelism each process only sees its
local batch; gathering the embeddings of all processes gives every anchor the *global* batch as
negatives, as SimCLR (Chen et al. 2020) does with batches spread over many accelerators.

``torch.distributed.all_gather`` does not propagate gradients. :func:`gather` wraps it in an autograd
function whose backward pass **sums** the incoming gradients over all processes (``all_reduce``) and
hands each process the slice that belongs to its own input. Then, when every process computes
``L_r`` = mean over its *local* anchors against the *gathered* candidates:

* the average of ``L_r`` over the ``W`` processes equals the single-process loss on the full batch
  (the concatenation of the local batches in rank order), provided every rank has the same number of
  anchors;
* the gradient each process receives for its local embeddings equals ``W`` times the gradient of the
  full-batch loss, so after DistributedDataParallel averages parameter gradients over ``W`` processes
  the update is exactly the full-batch gradient.

Losses that average over a *subset* of the batch whose size differs between processes (the labelled
samples of a semi-supervised batch) cannot simply average locally; :func:`global_masked_mean` divides by
the global count instead, so averaging over processes again gives the full-batch mean.

When ``torch.distributed`` is unavailable, not initialised, or has a single process, :func:`gather` is
the identity and the losses behave as in a single process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process in the default group (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGradient(torch.autograd.Function):
    """All-gather along dim 0 whose backward all-reduces (sums) gradients and returns the local slice."""

    @staticmethod
    def forward(ctx, local: Tensor) -> Tensor:  # type: ignore[override]
        ctx.local_size = local.shape[0]
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.local_size
        return grad[start : start + ctx.local_size]


def gather(local: Tensor) -> Tensor:
    """Concatenate ``local`` (n, ...) from all processes in rank order -> (W * n, ...).

    Gradients flow back to every process's ``local`` (see the module docstring for the scaling).
    All processes must call this with the same shape. Integer tensors (labels) are gathered too;
    they simply carry no gradient. Identity when not distributed.
    """
    if not is_distributed():
        return local
    if local.dtype.is_floating_point and torch.is_grad_enabled():
        return _GatherWithGradient.apply(local)
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts, dim=0)


def local_offset(local_batch_size: int) -> int:
    """Index of this process's first sample inside the gathered batch (``rank * n``)."""
    return rank() * local_batch_size


def global_masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """This process's share of the mean of ``values[mask]`` over the global batch (all processes).

    Returns ``W * sum(values[mask]) / max(1, M)`` with ``M`` the number of selected elements on all ``W``
    processes (an ``all_reduce``, run by every process). The average over processes of the returned
    values, and of their gradients, is then the single-process mean over the concatenated batch, even when
    processes select different numbers of elements (or none); with nothing selected anywhere it is 0,
    attached to the graph. In one process it is the plain mean of ``values[mask]``.
    """
    if values.shape != mask.shape:
        raise ValueError(f"values and mask must have the same shape, got {tuple(values.shape)} and {tuple(mask.shape)}")
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    count = mask.sum().reshape(1)
    if is_distributed():
        count = count.clone()
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
    return world_size() * total / count.clamp_min(1).to(total.dtype).squeeze(0)
