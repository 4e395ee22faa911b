"""PIRL: pretext-invariant representations (Misra & van der Maaten 2020, CVPR), jigsaw as the pretext.

The representation of an image must not change when the image is cut into a shuffled jigsaw
puzzle. ``f(v_I)``: backbone + linear head on the (augmented) image; ``g(v_{I^t})``: every tile through
the backbone and a linear map, the tile codes concatenated in their shuffled order, then a linear map.
A memory bank ``m_I`` (EMA of ``f(v_I)``) supplies the positive and ``N`` negatives:

    h(a, b)      = exp(s(a, b) / tau) / (exp(s(a, b) / tau) + N / |D|)        (s: cosine)
    L_NCE(I, u)  = -log h(m_I, u) - sum_{I' in D_N} log(1 - h(m_{I'}, u))
    L            = lambda L_NCE(I, g(v_{I^t})) + (1 - lambda) L_NCE(I, f(v_I))
    after the optimiser step:  m_I <- normalize(0.5 m_I + 0.5 f(v_I))

``h`` is the NCE posterior of :func:`ssl_shared.losses.nce_loss` with ``log p_noise = -log |D|``,
``nu = N`` and ``log p_model = s / tau - log Z``: as in NPID, whose NCE criterion PIRL's code reuses, ``Z``
is estimated once from the first batch (:mod:`.nce_normaliser`). Taken literally (``Z = 1``),
``exp(s / tau)`` dwarfs ``N / |D|`` and every negative would count as data. The ``N`` negatives are drawn once per batch and shared by
all anchors (memory ``N x d`` instead of ``B x N x d``). Paper: lambda 0.5, tau 0.07, N 32000, 128-d, bank momentum 0.5.

Data-parallel runs behave as one process on the concatenated batch, as for NPID (:mod:`.npid`): shared
negatives from the bank's generator, ``Z`` from the scores of all processes, and bank updates with the
indices and embeddings of all processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses import distributed, nce_loss
from ssl_shared.methods.base import SSLMethod, check_image_shape
from ssl_shared.methods.exemplar import check_indices
from ssl_shared.methods.jigsaw import shuffle_tiles, tile_size
from ssl_shared.methods.nce_normaliser import FixedNormaliser
from ssl_shared.methods.patches import grid_tiles, normalize_tiles
from ssl_shared.methods.views import ViewConfig, augment_view
from ssl_shared.queues import MemoryBank


@dataclass
class PIRLConfig:
    # Misra & van der Maaten 2020: lambda 0.5, tau 0.07, 32000 negatives, 128-d, bank momentum 0.5,
    # 3x3 jigsaw with random permutations of all 9! orders.
    num_samples: int = 50000
    embedding_dim: int = 128
    temperature: float = 0.07
    num_negatives: int = 32000
    loss_weight: float = 0.5
    bank_momentum: float = 0.5
    grid: int = 3
    tile_fraction: float = 64 / 75
    views: ViewConfig = field(default_factory=ViewConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss_weight <= 1.0 or self.temperature <= 0 or self.num_negatives < 1:
            raise ValueError("need loss_weight in [0, 1], temperature > 0 and num_negatives >= 1")


def random_permutations(batch: int, n: int, device=None, generator: torch.Generator | None = None) -> Tensor:
    """``(B, n)`` independent uniformly random permutations (argsort of uniform noise)."""
    return torch.rand(batch, n, generator=generator, device=device).argsort(dim=1)


class PIRL(SSLMethod):
    name: ClassVar[str] = "pirl"
    family: ClassVar[str] = "contrastive"
    citation: ClassVar[str] = "Misra & van der Maaten 2020, arXiv 1912.01991"
    config_class: ClassVar[type] = PIRLConfig
    required_inputs: ClassVar[set[str]] = {"image", "index"}

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: PIRLConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        c = self.config
        n = c.grid * c.grid
        self.image_head = nn.Linear(feature_dim, c.embedding_dim)
        self.tile_head = nn.Linear(feature_dim, c.embedding_dim)
        self.puzzle_head = nn.Linear(n * c.embedding_dim, c.embedding_dim)
        self.bank = MemoryBank(c.num_samples, c.embedding_dim, c.bank_momentum)
        self.normaliser = FixedNormaliser(c.num_samples)
        self._pending: tuple[Tensor, Tensor] | None = None

    def validate_input(self, image_shape, num_frames=None) -> None:
        ch, h, w = check_image_shape(self.name, image_shape)
        tile = tile_size((h, w), self.config.grid, self.config.tile_fraction)
        self.check_backbone_accepts((ch, tile, tile), "PIRL jigsaw tiles")

    def puzzle_embedding(self, x: Tensor) -> Tensor:
        c = self.config
        tiles, _, _ = grid_tiles(x, c.grid, tile_size(tuple(x.shape[-2:]), c.grid, c.tile_fraction))
        perms = random_permutations(x.shape[0], c.grid * c.grid, x.device)
        tiles = normalize_tiles(shuffle_tiles(tiles, perms))
        b, n = tiles.shape[:2]
        codes = self.tile_head(self.encode(tiles.flatten(0, 1))).view(b, n * c.embedding_dim)
        return F.normalize(self.puzzle_head(codes), dim=1)

    def nce(self, embedding: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
        t = self.config.temperature
        noise_logits = embedding @ negatives.T / t
        self.normaliser.fix(noise_logits)
        data = self.normaliser((embedding * positives).sum(1) / t)
        noise = self.normaliser(noise_logits)
        log_noise = -math.log(self.config.num_samples)
        return nce_loss(data, torch.full_like(data, log_noise), noise, torch.full_like(noise, log_noise))

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        c = self.config
        index = check_indices(batch["index"].to(x.device), c.num_samples, x.shape[0])
        view = augment_view(x, c.views)
        f = F.normalize(self.image_head(self.encode(view)), dim=1)
        g = self.puzzle_embedding(view)
        memory = self.bank.get(index)
        negatives = self.bank.sample(c.num_negatives)
        loss_puzzle = self.nce(g, memory, negatives)
        loss_image = self.nce(f, memory, negatives)
        loss = c.loss_weight * loss_puzzle + (1 - c.loss_weight) * loss_image
        self._pending = (index, f.detach())
        return loss, {"loss": loss.item(), "nce_puzzle": loss_puzzle.item(), "nce_image": loss_image.item()}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        if self._pending is not None:
            # Every process writes the indices and embeddings of all processes: the banks stay identical.
            index, f = self._pending
            self.bank.update(distributed.gather(index), distributed.gather(f))
            self._pending = None
