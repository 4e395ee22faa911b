"""Cutting images into patches and tiles for the patch-based pretext tasks.

* :func:`grid_tiles`: a ``g x g`` grid of cells over the central square of the image, one
  ``tile x tile`` crop per cell at a random offset inside the cell (jigsaw, PIRL, counting);
* :func:`overlapping_grid`: a ``g x g`` grid of overlapping ``p x p`` patches with stride ``s`` (CPC);
* :func:`normalize_tiles`: per-tile zero mean, unit standard deviation (Noroozi & Favaro 2016 do this
  so that low-level statistics do not give the answer away).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssl_shared.augment import crop_at


def grid_tiles(
    x: Tensor, grid: int, tile: int, generator: torch.Generator | None = None, random_offsets: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Cut ``grid x grid`` tiles of ``tile x tile`` pixels, one per cell, cells in row-major order.

    The cells tile the central ``(grid * cell)`` square, ``cell = min(H, W) // grid``. Returns
    ``tiles (B, grid*grid, C, tile, tile)`` and the tiles' absolute ``tops`` and ``lefts``
    ``(B, grid*grid)``. With ``random_offsets=False`` each tile sits at the top-left of its cell.
    """
    b, c, h, w = x.shape
    cell = min(h, w) // grid
    if tile < 1 or tile > cell:
        raise ValueError(f"tile size must be in [1, {cell}] for a {grid}x{grid} grid on {h}x{w} images, got {tile}")
    top0, left0 = (h - grid * cell) // 2, (w - grid * cell) // 2
    n = grid * grid
    if random_offsets:
        dy = torch.randint(0, cell - tile + 1, (b, n), generator=generator, device=x.device)
        dx = torch.randint(0, cell - tile + 1, (b, n), generator=generator, device=x.device)
    else:
        dy = dx = torch.zeros(b, n, dtype=torch.long, device=x.device)
    idx = torch.arange(n, device=x.device)
    tops = top0 + (idx // grid) * cell + dy
    lefts = left0 + (idx % grid) * cell + dx
    flat = x.repeat_interleave(n, dim=0) if b else x
    tiles = crop_at(flat, tops.reshape(-1), lefts.reshape(-1), tile)
    return tiles.view(b, n, c, tile, tile), tops, lefts


def overlapping_grid(x: Tensor, patch: int, stride: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, gh, gw, C, patch, patch)`` patches at every ``stride`` step."""
    if patch > min(x.shape[-2:]) or stride < 1:
        raise ValueError(f"patch {patch} / stride {stride} do not fit images of {tuple(x.shape[-2:])}")
    p = x.unfold(2, patch, stride).unfold(3, patch, stride)  # (B, C, gh, gw, p, p)
    return p.permute(0, 2, 3, 1, 4, 5).contiguous()


def normalize_tiles(tiles: Tensor, eps: float = 1e-5) -> Tensor:
    """Zero mean and unit std per tile over its ``(C, h, w)`` values; tiles ``(..., C, h, w)``."""
    dims = (-3, -2, -1)
    mean = tiles.mean(dim=dims, keepdim=True)
    std = tiles.std(dim=dims, keepdim=True, unbiased=False)
    return (tiles - mean) / (std + eps)
