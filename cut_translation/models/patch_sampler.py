"""Patch sampling and the per-layer MLP heads of PatchNCE (the CUT code's ``netF = mlp_sample``).

For every PatchNCE layer, :func:`sample_locations` draws ``num_patches`` distinct spatial locations
(all of them when the map is smaller, as in the CUT code). The *same* locations are used for every
image of a group, and for the query (output image) and the key (input image) features, so that the
positive of query ``n`` is the key at the same location ``n``. :func:`gather_patches` reads a feature
map at those locations and :class:`PatchMLPHeads` projects each layer's patches with its own
``Linear(C_l, 256) -> ReLU -> Linear(256, 256)`` followed by L2 normalisation (Park et al. 2020, Sec. 3.2).

The heads are built eagerly from the generator's known channel counts (the CUT code builds them lazily
on the first batch, hence its ``data_dependent_initialize``); the maths is the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sample_locations(
    height: int, width: int, num_patches: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``min(num_patches, H*W)`` distinct flat indices ``y * W + x`` in random order (int64, on ``device``)."""
    if num_patches < 1:
        raise ValueError(f"num_patches must be >= 1, got {num_patches}")
    perm = torch.randperm(height * width, generator=generator)
    return perm[: min(num_patches, height * width)].to(device)


def gather_patches(feat: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Features of ``feat`` (B, C, H, W) at flat locations ``ids`` (N,) -> (B, N, C).

    Output ``[b, n, c] = feat[b, c, ids[n] // W, ids[n] % W]``; works for any memory format.
    """
    if feat.dim() != 4:
        raise ValueError(f"feat must be (B, C, H, W), got shape {tuple(feat.shape)}")
    width = feat.shape[3]
    return feat[:, :, ids // width, ids % width].transpose(1, 2)


def sample_patches(
    feats: list[torch.Tensor],
    num_patches: int,
    ids: list[torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gather every layer at new random locations (``ids=None``) or at the given ones; returns (patches, ids)."""
    if ids is None:
        ids = [sample_locations(f.shape[2], f.shape[3], num_patches, f.device, generator) for f in feats]
    elif len(ids) != len(feats):
        raise ValueError(f"got {len(ids)} index tensors for {len(feats)} feature maps")
    return [gather_patches(f, i) for f, i in zip(feats, ids)], ids


class PatchMLPHeads(nn.Module):
    """One 2-layer MLP per PatchNCE layer, output L2-normalised: ``normalize(W2 relu(W1 x + b1) + b2)``."""

    def __init__(self, in_channels: list[int], out_dim: int = 256) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"MLP width must be >= 1, got {out_dim}")
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, out_dim), nn.ReLU(inplace=True), nn.Linear(out_dim, out_dim))
            for c in in_channels
        )

    def forward(self, patches: list[torch.Tensor]) -> list[torch.Tensor]:
        """``patches[l]`` of shape (B, N, C_l) -> list of (B, N, out_dim) unit vectors."""
        if len(patches) != len(self.mlps):
            raise ValueError(f"got {len(patches)} layers of patches for {len(self.mlps)} MLP heads")
        return [F.normalize(mlp(p), dim=-1, eps=1e-7) for mlp, p in zip(self.mlps, patches)]
