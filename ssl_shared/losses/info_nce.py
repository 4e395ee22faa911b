"""InfoNCE (van den Oord, Li & Vinyals 2018, "Representation Learning with Contrastive Predictive Coding").

arXiv 1807.03748, eq. 4: among a set of candidates ``X`` holding one
positive ``x_pos`` and negatives, the probability of picking the positive for a context (query) ``c``
is ``f(x_pos, c) / sum_j f(x_j, c)`` with ``f(x, c) = exp(s(c, x) / tau)``. The loss is its negative
log, i.e. a cross-entropy over the critic scores::

    L = -1/B sum_i log( exp(s(q_i, k_i) / tau) / sum_{x in X_i} exp(s(q_i, x) / tau) )

Critics ``s(q, k)``:

* ``"cosine"``: ``q.k / (||q|| ||k||)`` (MoCo, SimCLR; use a temperature around 0.07-0.5);
* ``"dot"``: ``q.k`` (CPC with ``tau = 1``);
* ``"bilinear"``: ``q W k^T`` with a ``(D_q, D_k)`` matrix ``W`` (CPC; CURL, Laskin et al. 2020, with
  ``tau = 1``). Pass ``weight`` to the function, or let :class:`InfoNCELoss` own it.

Candidate sets ``X_i`` (``negatives``):

* ``"batch"``: query (B, D), key (B, D); ``X_i`` = all keys of the batch, positive ``k_i``
  (B - 1 negatives; with ``gather_distributed`` the keys of all processes, see
  :mod:`ssl_shared.losses.distributed`).
* ``"queue"``: query (B, D), key (B, D), queue (K, D); ``X_i = {k_i} + queue`` (MoCo, He et al. 2020:
  K negatives from a FIFO of past keys; the caller detaches the queue).
* ``"same_image"``: query (B, N, D), key (B, N, D) holding ``N`` locations (patches) per image;
  ``X_{b,n}`` = the ``N`` keys of image ``b``, positive at the same location ``n`` (N - 1 negatives).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses import distributed
from ssl_shared.losses._checks import (
    check_choice,
    check_non_empty,
    check_positive,
    check_rank,
)

CRITICS = ("cosine", "dot", "bilinear")
NEGATIVE_MODES = ("batch", "queue", "same_image")


def info_nce_loss(
    query: Tensor,
    key: Tensor,
    critic: str = "cosine",
    temperature: float = 0.07,
    negatives: str = "batch",
    queue: Tensor | None = None,
    weight: Tensor | None = None,
    gather_distributed: bool = False,
) -> Tensor:
    """InfoNCE loss, mean over queries (see the module docstring for shapes and modes).

    Args:
        query: (B, D_q), or (B, N, D_q) for ``negatives="same_image"``.
        key: positives, same leading shape as ``query``, last dim ``D_k``.
        critic: ``"cosine"``, ``"dot"`` or ``"bilinear"``.
        temperature: ``tau`` > 0; 0.07 is MoCo's value (He et al. 2020) for the cosine critic.
        negatives: ``"batch"``, ``"queue"`` or ``"same_image"``.
        queue: (K, D_k) extra negatives; required for, and only allowed with, ``negatives="queue"``.
        weight: (D_q, D_k) bilinear matrix; required for, and only allowed with, ``critic="bilinear"``.
        gather_distributed: use the keys of all processes as negatives (only with ``"batch"``).

    Returns:
        Scalar loss.
    """
    _check_inputs(query, key, critic, temperature, negatives, queue, weight, gather_distributed)
    query = _transform_query(query, critic, weight)
    if critic == "cosine":
        key = F.normalize(key, dim=-1)
        queue = F.normalize(queue, dim=-1) if queue is not None else None
    if negatives == "queue":
        assert queue is not None  # _check_inputs requires it
        positive_logit = (query * key).sum(dim=1, keepdim=True)
        logits = torch.cat([positive_logit, query @ queue.T], dim=1) / temperature
        targets = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
        return F.cross_entropy(logits, targets)
    if negatives == "same_image":
        batch, num_locations, _ = query.shape
        logits = query @ key.transpose(1, 2) / temperature  # (B, N, N)
        targets = torch.arange(num_locations, device=query.device).repeat(batch)
        return F.cross_entropy(logits.reshape(batch * num_locations, num_locations), targets)
    offset = 0
    if gather_distributed:
        offset = distributed.local_offset(key.shape[0])
        key = distributed.gather(key)
    logits = query @ key.T / temperature
    targets = offset + torch.arange(query.shape[0], device=query.device)
    return F.cross_entropy(logits, targets)


def _transform_query(query: Tensor, critic: str, weight: Tensor | None) -> Tensor:
    """Apply the part of the critic that acts on the query, so that ``s(q, k) = q' . k'``."""
    if critic == "cosine":
        return F.normalize(query, dim=-1)
    if critic == "bilinear":
        assert weight is not None  # _check_inputs requires it
        return query @ weight
    return query


def _check_inputs(
    query: Tensor,
    key: Tensor,
    critic: str,
    temperature: float,
    negatives: str,
    queue: Tensor | None,
    weight: Tensor | None,
    gather_distributed: bool,
) -> None:
    check_choice("critic", critic, CRITICS)
    check_choice("negatives", negatives, NEGATIVE_MODES)
    check_positive("temperature", temperature)
    check_rank("query", query, 3 if negatives == "same_image" else 2)
    check_rank("key", key, query.dim())
    check_non_empty("query", query)
    if query.shape[:-1] != key.shape[:-1]:
        raise ValueError(
            f"query and key must agree in all but the last dimension, got {tuple(query.shape)} and {tuple(key.shape)}"
        )
    if critic == "bilinear":
        if weight is None:
            raise ValueError("critic='bilinear' needs weight, a (D_q, D_k) matrix; got weight=None")
        check_rank("weight", weight, 2)
        if weight.shape != (query.shape[-1], key.shape[-1]):
            raise ValueError(
                f"weight must have shape (D_q, D_k) = {(query.shape[-1], key.shape[-1])}, got {tuple(weight.shape)}"
            )
    else:
        if weight is not None:
            raise ValueError(f"weight is only used by critic='bilinear', got critic={critic!r}")
        if query.shape[-1] != key.shape[-1]:
            raise ValueError(
                f"critic={critic!r} needs query and key of equal dimension, got {query.shape[-1]} and {key.shape[-1]}"
            )
    if negatives == "queue":
        if queue is None:
            raise ValueError("negatives='queue' needs queue, a (K, D_k) tensor; got queue=None")
        check_rank("queue", queue, 2)
        if queue.shape[1] != key.shape[-1]:
            raise ValueError(f"queue must have D_k = {key.shape[-1]} columns, got shape {tuple(queue.shape)}")
    elif queue is not None:
        raise ValueError(f"queue is only used with negatives='queue', got negatives={negatives!r}")
    if gather_distributed and negatives != "batch":
        raise ValueError(f"gather_distributed=True needs negatives='batch', got negatives={negatives!r}")


class InfoNCELoss(nn.Module):
    """InfoNCE as a module; with ``critic="bilinear"`` it owns ``W`` as a parameter.

    ``W`` is initialised uniformly in [0, 1), as CURL does (``curl_sac.py``, ``torch.rand``).

    Args:
        critic, temperature, negatives, gather_distributed: as in :func:`info_nce_loss`.
        query_dim, key_dim: shape of ``W``; required for (and only allowed with) ``critic="bilinear"``.
            ``key_dim`` defaults to ``query_dim``.
    """

    def __init__(
        self,
        critic: str = "cosine",
        temperature: float = 0.07,
        negatives: str = "batch",
        query_dim: int | None = None,
        key_dim: int | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_choice("critic", critic, CRITICS)
        check_choice("negatives", negatives, NEGATIVE_MODES)
        check_positive("temperature", temperature)
        if gather_distributed and negatives != "batch":
            raise ValueError(f"gather_distributed=True needs negatives='batch', got negatives={negatives!r}")
        self.critic = critic
        self.temperature = temperature
        self.negatives = negatives
        self.gather_distributed = gather_distributed
        self.weight: nn.Parameter | None = None
        if critic == "bilinear":
            if query_dim is None or query_dim < 1:
                raise ValueError(f"critic='bilinear' needs query_dim >= 1, got query_dim={query_dim}")
            key_dim = query_dim if key_dim is None else key_dim
            if key_dim < 1:
                raise ValueError(f"key_dim must be >= 1, got {key_dim}")
            self.weight = nn.Parameter(torch.rand(query_dim, key_dim))
        elif query_dim is not None or key_dim is not None:
            raise ValueError(f"query_dim/key_dim are only used by critic='bilinear', got critic={critic!r}")

    def forward(self, query: Tensor, key: Tensor, queue: Tensor | None = None) -> Tensor:
        return info_nce_loss(
            query,
            key,
            critic=self.critic,
            temperature=self.temperature,
            negatives=self.negatives,
            queue=queue,
            weight=self.weight,
            gather_distributed=self.gather_distributed,
        )
