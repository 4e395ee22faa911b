"""Input validation shared by the loss functions.

Every check raises ``ValueError`` with a message that names the offending argument, the value it
received and what is allowed, so that a bad call fails before any work is done.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def check_rank(name: str, tensor: Tensor, rank: int) -> None:
    """Require ``tensor.dim() == rank``."""
    if tensor.dim() != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {tuple(tensor.shape)} (rank {tensor.dim()})")


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Require two tensors to have identical shapes."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_same_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Require two tensors to have the same size along dimension 0."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same batch size, got {a.shape[0]} and {b.shape[0]}")


def check_non_empty(name: str, tensor: Tensor) -> None:
    """Require at least one element along dimension 0."""
    if tensor.dim() == 0 or tensor.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {tuple(tensor.shape)}")


def check_positive(name: str, value: float) -> None:
    """Require ``value > 0`` (temperatures)."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def check_non_negative(name: str, value: float) -> None:
    """Require ``value >= 0`` (margins, regulariser weights)."""
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    """Require ``value`` to be one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def check_labels(labels: Tensor, embeddings: Tensor, name: str = "labels") -> None:
    """Require a 1-D integer label vector with one label per embedding row."""
    check_rank(name, labels, 1)
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise ValueError(f"{name} must be an integer or bool tensor, got dtype {labels.dtype}")
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"{name} must have one entry per embedding, got {labels.shape[0]} labels "
            f"for {embeddings.shape[0]} embeddings"
        )


def zero_loss(*tensors: Tensor) -> Tensor:
    """A scalar zero that stays connected to the autograd graph of ``tensors``.

    Returned when a batch holds nothing to learn from (e.g. no valid triplet), so that
    ``loss.backward()`` still works and yields zero gradients.
    """
    total = tensors[0].sum() * 0.0
    for tensor in tensors[1:]:
        total = total + tensor.sum() * 0.0
    return total
