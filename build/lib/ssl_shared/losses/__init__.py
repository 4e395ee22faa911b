"""Contrastive and self-supervised losses, one family a module, each with its formula in the docstring.

| module | loss | reference |
|---|---|---|
| ``contrastive_pair`` | margin contrastive loss on labelled pairs | Chopra, Hadsell & LeCun 2005 |
| ``triplet`` | triplet loss, batch-all / batch-hard / semi-hard mining | Schroff et al. 2015; Hermans et al. 2017 |
| ``lifted_structured`` | smooth lifted structured loss | Song et al. 2016 |
| ``npair`` | multi-class N-pair loss (+ optional L2 penalty) | Sohn 2016 |
| ``nce`` | noise-contrastive estimation | Gutmann & Hyvarinen 2010 |
| ``info_nce`` | InfoNCE, cosine/dot/bilinear critics, batch/queue/same-image negatives | van den Oord et al. 2018 |
| ``nt_xent`` | NT-Xent | Chen et al. 2020 (SimCLR) |
| ``soft_nearest_neighbor`` | soft nearest neighbour loss | Frosst et al. 2019 |
| ``supcon`` | supervised contrastive loss ``L_out`` | Khosla et al. 2020 |
| ``byol`` | BYOL ``2 - 2 cos`` and SimSiam negative cosine | Grill et al. 2020; Chen & He 2021 |
| ``patch_nce`` | PatchNCE | Park et al. 2020 (CUT) |
| ``distributed`` | gradient-preserving all-gather for global negatives | |
"""

from ssl_shared.losses.byol import BYOLLoss, SimSiamLoss, byol_loss, simsiam_loss, symmetric_byol_loss
from ssl_shared.losses.contrastive_pair import ContrastivePairLoss, contrastive_pair_loss
from ssl_shared.losses.distributed import gather, is_distributed
from ssl_shared.losses.info_nce import CRITICS, NEGATIVE_MODES, InfoNCELoss, info_nce_loss
from ssl_shared.losses.lifted_structured import LiftedStructuredLoss, lifted_structured_loss
from ssl_shared.losses.nce import NCELoss, nce_loss
from ssl_shared.losses.npair import NPairLoss, npair_loss
from ssl_shared.losses.nt_xent import NTXentLoss, nt_xent_loss
from ssl_shared.losses.patch_nce import PATCH_NEGATIVE_MODES, PatchNCELoss, patch_nce_loss
from ssl_shared.losses.soft_nearest_neighbor import SoftNearestNeighborLoss, soft_nearest_neighbor_loss
from ssl_shared.losses.supcon import SupConLoss, supcon_loss
from ssl_shared.losses.triplet import (
    MINING_MODES,
    TripletLoss,
    batch_triplet_loss,
    mine_triplets,
    triplet_loss,
)

__all__ = [
    "BYOLLoss",
    "CRITICS",
    "ContrastivePairLoss",
    "InfoNCELoss",
    "LiftedStructuredLoss",
    "MINING_MODES",
    "NCELoss",
    "NEGATIVE_MODES",
    "NPairLoss",
    "NTXentLoss",
    "PATCH_NEGATIVE_MODES",
    "PatchNCELoss",
    "SimSiamLoss",
    "SoftNearestNeighborLoss",
    "SupConLoss",
    "TripletLoss",
    "batch_triplet_loss",
    "byol_loss",
    "contrastive_pair_loss",
    "gather",
    "info_nce_loss",
    "is_distributed",
    "lifted_structured_loss",
    "mine_triplets",
    "nce_loss",
    "npair_loss",
    "nt_xent_loss",
    "patch_nce_loss",
    "simsiam_loss",
    "soft_nearest_neighbor_loss",
    "supcon_loss",
    "symmetric_byol_loss",
    "triplet_loss",
]
