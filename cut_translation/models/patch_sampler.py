"""Patch sampling and the per-layer MLP heads of PatchNCE (the CUT code's ``netF = mlp_sample``).

For every PatchNCE layer, :func:`sample_locations` draws ``num_patches`` distinct spatial locations
(all of them when the map is smaller, as in the CUT code). The *same* locations are used for every
image of a group, and for the query (output image) and the key (input image) features, so that the
positive of query ``n`` is the key at the same location ``n``. :func:`gather_patches` reads a feature
map at those locations (one set for the batch, or one per image) and :class:`PatchMLPHeads` projects
each layer's patches with its own ``Linear(C_l, 256) -> ReLU -> Linear(256, 256)`` followed by L2
normalisation (Park et al. 2020, Sec. 3.2).

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


def mirror_locations(ids: torch.Tensor, width: int) -> torch.Tensor:
    """Flat locations ``y * W + x`` -> ``y * W + (W - 1 - x)``: the same pixels of a horizontally flipped map.

    Reading ``flip(feat)`` at ``ids`` equals reading ``feat`` at ``mirror_locations(ids, W)``, which is
    how FastCUT's flip equivariance is applied without materialising (and back-propagating) a flip.
    """
    return ids - ids % width + (width - 1 - ids % width)


def gather_patches(feat: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Features of ``feat`` (B, C, H, W) at flat locations ``ids`` -> (B, N, C).

    ``ids`` is (N,) (the same locations in every image) or (B, N) (per image). Output
    ``[b, n, c] = feat[b, c, ids[b, n] // W, ids[b, n] % W]``; works for any memory format. One gather
    over the whole batch: its backward writes a single zero-initialised gradient of ``feat``'s size
    (slicing the batch first would write one per slice).
    """
    if feat.dim() != 4:
        raise ValueError(f"feat must be (B, C, H, W), got shape {tuple(feat.shape)}")
    b, c = feat.shape[:2]
    if ids.dim() == 1:
        ids = ids.expand(b, -1)
    if ids.dim() != 2 or ids.shape[0] != b:
        raise ValueError(f"ids must be (N,) or (B={b}, N), got shape {tuple(ids.shape)}")
    index = ids[:, None, :].expand(b, c, ids.shape[1])
    return feat.flatten(2).gather(2, index).transpose(1, 2)


class PatchMLPHeads(nn.Module):
    """One 2-layer MLP per PatchNCE layer, output L2-normalised: ``normalize(W2 relu(W1 x + b1) + b2)``.

    The normalisation runs in fp32 whatever the MLP's precision (under bf16 autocast the linear layers give
    bf16), so the unit vectors that PatchNCE compares are fp32.
    """

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
        return [F.normalize(mlp(p).float(), dim=-1, eps=1e-7) for mlp, p in zip(self.mlps, patches)]
