"""Jigsaw puzzles (Noroozi & Favaro 2016, ECCV): recognise which permutation shuffled the tiles.

The image's central square is cut into ``grid x grid`` cells; one ``tile``-pixel crop is taken at a
random offset in each cell (the gap between tiles prevents edge continuity shortcuts); the tiles are
shuffled by permutation ``P_y`` of a fixed set chosen for large Hamming distance
(:mod:`.permutations`) and each tile is normalised on its own:

    position k shows tile P_y[k]                      (tiles_in[P_y[k]] = tiles_out[k])
    z = MLP([f(tile_out_0), ..., f(tile_out_8)])       (shared backbone f, "context-free network")
    L = CE(z, y)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod, check_image_shape
from ssl_shared.methods.patches import grid_tiles, normalize_tiles
from ssl_shared.methods.permutations import maximal_hamming_permutations


@dataclass
class JigsawConfig:
    # Noroozi & Favaro 2016: 3x3 grid, 64 px tiles in 75 px cells (tile_fraction 64/75), per-tile
    # normalisation, 1000 permutations in the main model (100 here by default: the greedy maximal-distance
    # set of 1000 is slow to build; pass num_permutations=1000 for the paper's setting).
    grid: int = 3
    num_permutations: int = 100
    tile_fraction: float = 64 / 75
    normalize: bool = True
    hidden_dim: int = 512
    permutation_seed: int = 0

    def __post_init__(self) -> None:
        if self.grid < 2 or not 0.0 < self.tile_fraction <= 1.0 or self.hidden_dim < 1:
            raise ValueError(
                f"need grid >= 2, tile_fraction in (0, 1], hidden_dim >= 1, got {self.grid}, "
                f"{self.tile_fraction}, {self.hidden_dim}"
            )


def tile_size(image_hw: tuple[int, int], grid: int, tile_fraction: float) -> int:
    cell = min(image_hw) // grid
    return max(1, int(cell * tile_fraction))


def shuffle_tiles(tiles: Tensor, perms: Tensor) -> Tensor:
    """``out[b, k] = tiles[b, perms[b, k]]`` for tiles ``(B, N, ...)`` and perms ``(B, N)``."""
    index = perms.view(*perms.shape, *([1] * (tiles.ndim - 2))).expand_as(tiles)
    return tiles.gather(1, index)


def unshuffle_tiles(shuffled: Tensor, perms: Tensor) -> Tensor:
    """Inverse of :func:`shuffle_tiles`: ``tiles[b, perms[b, k]] = shuffled[b, k]``."""
    index = perms.view(*perms.shape, *([1] * (shuffled.ndim - 2))).expand_as(shuffled)
    return torch.empty_like(shuffled).scatter_(1, index, shuffled)


def make_puzzle(
    x: Tensor, permutations: Tensor, grid: int, tile: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Shuffled tiles ``(B, grid^2, C, tile, tile)`` and labels ``(B,)`` (rows of ``permutations``)."""
    tiles, _, _ = grid_tiles(x, grid, tile, generator)
    labels = torch.randint(0, permutations.shape[0], (x.shape[0],), generator=generator, device=x.device)
    return shuffle_tiles(tiles, permutations[labels]), labels


class Jigsaw(SSLMethod):
    name: ClassVar[str] = "jigsaw"
    family: ClassVar[str] = "innate relationship"
    citation: ClassVar[str] = "Noroozi & Favaro 2016, arXiv 1603.09246"
    config_class: ClassVar[type] = JigsawConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: JigsawConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        c = self.config
        perms = maximal_hamming_permutations(c.num_permutations, c.grid * c.grid, c.permutation_seed)
        self.register_buffer("permutations", torch.as_tensor(perms))
        n = c.grid * c.grid
        self.classifier = nn.Sequential(
            nn.Linear(n * feature_dim, c.hidden_dim), nn.ReLU(), nn.Linear(c.hidden_dim, c.num_permutations)
        )

    def validate_input(self, image_shape, num_frames=None) -> None:
        ch, h, w = check_image_shape(self.name, image_shape)
        tile = tile_size((h, w), self.config.grid, self.config.tile_fraction)
        if min(h, w) // self.config.grid < 2:
            raise ValueError(
                f"jigsaw: a {self.config.grid}x{self.config.grid} grid needs images of at least "
                f"{2 * self.config.grid} px, got {h}x{w}"
            )
        self.check_backbone_accepts((ch, tile, tile), "jigsaw tiles")

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        c = self.config
        tile = tile_size(tuple(x.shape[-2:]), c.grid, c.tile_fraction)
        puzzle, labels = make_puzzle(x, self.permutations, c.grid, tile)
        if c.normalize:
            puzzle = normalize_tiles(puzzle)
        b, n = puzzle.shape[:2]
        feats = self.encode(puzzle.flatten(0, 1)).view(b, n * self.feature_dim)
        logits = self.classifier(feats)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"loss": loss.item(), "accuracy": acc.item()}
