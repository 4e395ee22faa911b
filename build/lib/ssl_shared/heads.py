"""Heads on top of an encoder: projection MLP (SimCLR/MoCo v2), prediction MLP (BYOL/SimSiam) and the
bilinear critic of CURL."""

from __future__ import annotations

import torch
from torch import nn


def _mlp(dims: list[int], batch_norm: bool, last_batch_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=not (batch_norm and (not last or last_batch_norm))))
        if not last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(dims[i + 1]))
            layers.append(nn.ReLU(inplace=True))
        elif last_batch_norm:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=False))
    return nn.Sequential(*layers)


class ProjectionHead(nn.Module):
    """``num_layers`` linear layers with (BatchNorm +) ReLU in between (Chen et al. 2020, SimCLR:
    2 layers; SimCLR v2: 3 layers)."""

    def __init__(
        self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, batch_norm: bool = True
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.net = _mlp(dims, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PredictionHead(nn.Module):
    """BYOL's predictor ``q``: Linear-BN-ReLU-Linear (Grill et al. 2020, hidden 4096 in the paper)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.net = _mlp([in_dim, hidden_dim, out_dim], batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BilinearCritic(nn.Module):
    """CURL's similarity ``logits[i, j] = a_i^T W p_j`` (Srinivas et al. 2020, eq. 2).

    ``W`` starts as in the official code, uniform in [0, 1) — pass ``init="orthogonal"`` for an
    orthogonal start. Returns the ``(B, B)`` logits matrix; row ``i`` scores anchor ``i`` against
    every positive in the batch (the diagonal holds the true pairs).
    """

    def __init__(self, dim: int, init: str = "uniform") -> None:
        super().__init__()
        if init not in ("uniform", "orthogonal"):
            raise ValueError(f"init must be 'uniform' or 'orthogonal', got {init!r}")
        weight = torch.rand(dim, dim)
        if init == "orthogonal":
            nn.init.orthogonal_(weight)
        self.W = nn.Parameter(weight)

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        if (
            anchor.ndim != 2
            or positive.ndim != 2
            or anchor.shape[1] != self.W.shape[0]
            or positive.shape[1] != self.W.shape[1]
        ):
            raise ValueError(
                f"anchor and positive must be (B, {self.W.shape[0]}), got {tuple(anchor.shape)} and {tuple(positive.shape)}"
            )
        return anchor @ self.W @ positive.T
