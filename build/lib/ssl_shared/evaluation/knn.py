"""Weighted k-nearest-neighbour classification on L2-normalised features (Wu et al. 2018, NPID):
each of the k nearest training samples (cosine similarity s) votes for its class with weight
``exp(s / temperature)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_classify(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Top-1 accuracy (0..1) of the weighted k-NN vote."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    k = min(k, train_x.shape[0])
    sims = F.normalize(test_x.float(), dim=1) @ F.normalize(train_x.float(), dim=1).T
    top_sim, top_idx = sims.topk(k, dim=1)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    votes = torch.zeros(test_x.shape[0], num_classes)
    votes.scatter_add_(1, train_y.long()[top_idx], (top_sim / temperature).exp())
    return float((votes.argmax(1) == test_y.long()).float().mean())
