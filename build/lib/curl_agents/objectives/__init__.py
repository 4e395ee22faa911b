"""Auxiliary (self-supervised) objectives for the pixel agents, chosen by name.

Every objective follows the contract in :mod:`curl_agents.objectives.base`: it receives an
:class:`AuxBatch` (the same augmented views for every objective), borrows the online and
critic-target encoders, owns its heads and one optimizer, and is stepped by ``update(batch)``.

| name | loss | second input | reference |
|---|---|---|---|
| ``none`` | no auxiliary update | – | RAD/DrQ-style augmentation only |
| ``curl`` | bilinear InfoNCE, in-batch negatives, no temperature | target enc.(obs_pos) | Srinivas et al. 2020 |
| ``simclr`` | NT-Xent (tau 0.1) of projections | online enc.(obs_pos) | Chen et al. 2020 |
| ``byol`` | symmetric 2 - 2cos, projector + predictor | target enc. + EMA projector | Grill et al. 2020 |
| ``spr`` | 2 - 2cos of a one-step latent prediction | target enc.(next_obs) | Schwarzer et al. 2021 |
| ``moco`` | cosine InfoNCE (tau 0.2), 4096-key FIFO queue | target enc. + EMA projector | He et al. 2020; Chen et al. 2020 |
| ``atc`` | bilinear InfoNCE, residual anchor MLP | target enc.(next_obs) | Stooke et al. 2021 |
| ``reconstruction`` | SAC-AE's AE loss: pixel MSE to a 5-bit target + 1e-6 latent L2, decoder wd 1e-7 | obs itself | Yarats et al. 2019 |
| ``inverse_dynamics`` | MSE of the action from (z_t, z_t+1) | online enc.(next_obs) | Pathak et al. 2017; PAD |
| ``forward_dynamics`` | MSE of z_t+1 and of the reward from (z_t, a_t) | target enc.(next_obs) | Li et al. 2022 |
| ``rotation`` | 4-way rot90 cross-entropy | rot90(obs) | Gidaris et al. 2018 |
| ``ssl_method`` | any image-only method of ``ssl_shared.methods`` by name | the method's own views | see the method |

The objectives run on the host algorithm's views: ``CURL(aux="reconstruction")`` is "RAD + AE loss"
(random crops, CURL's encoder), not SAC-AE; SAC-AE itself (no augmentation, tanh encoder, its
cadence) is the algorithm ``SacAE`` (``--algo sac_ae``).

Adding an objective: write ``curl_agents/objectives/<name>.py`` with a subclass of :class:`AuxObjective`
(formula and citation in the docstring, knobs as keyword arguments with defaults, heads built in
``__init__`` followed by ``self._finish_init()``, and ``compute_loss``), then add one line to
``AUX_OBJECTIVES`` below.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from curl_agents.objectives.atc import AtcObjective
from curl_agents.objectives.base import AuxBatch, AuxObjective
from curl_agents.objectives.byol import ByolObjective
from curl_agents.objectives.curl import CurlObjective
from curl_agents.objectives.forward_dynamics import ForwardDynamicsObjective
from curl_agents.objectives.inverse_dynamics import InverseDynamicsObjective
from curl_agents.objectives.moco import MocoObjective
from curl_agents.objectives.reconstruction import ReconstructionObjective
from curl_agents.objectives.rotation import RotationObjective
from curl_agents.objectives.simclr import SimClrObjective
from curl_agents.objectives.spr import SprObjective
from curl_agents.objectives.ssl_method import SslMethodObjective

#: name -> objective class; ``"none"`` means no auxiliary update (``make_aux_objective`` returns None).
AUX_OBJECTIVES: dict[str, type[AuxObjective] | None] = {
    "none": None,
    "curl": CurlObjective,
    "simclr": SimClrObjective,
    "byol": ByolObjective,
    "spr": SprObjective,
    "moco": MocoObjective,
    "atc": AtcObjective,
    "reconstruction": ReconstructionObjective,
    "inverse_dynamics": InverseDynamicsObjective,
    "forward_dynamics": ForwardDynamicsObjective,
    "rotation": RotationObjective,
    "ssl_method": SslMethodObjective,
}


def aux_objective_options(name: str) -> dict[str, Any]:
    """The keyword arguments (knobs) objective ``name`` accepts, with their defaults."""
    cls = _lookup(name)
    if cls is None:
        return {}
    signature = inspect.signature(cls.__init__)
    return {p.name: p.default for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def make_aux_objective(
    name: str, encoder: nn.Module, target_encoder: nn.Module, action_dim: int, **kwargs: Any
) -> AuxObjective | None:
    """Build objective ``name`` on the given encoders; ``"none"`` gives ``None``.

    Unknown names and unknown keyword arguments raise ``ValueError`` listing what is allowed.
    """
    cls = _lookup(name)
    if cls is None:
        return None
    allowed = aux_objective_options(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"auxiliary objective {name!r} got unknown options {unknown}; allowed: {sorted(allowed)}")
    return cls(encoder, target_encoder, action_dim, **kwargs)


def _lookup(name: str) -> type[AuxObjective] | None:
    if name not in AUX_OBJECTIVES:
        raise ValueError(f"unknown auxiliary objective {name!r}; choose one of {sorted(AUX_OBJECTIVES)}")
    return AUX_OBJECTIVES[name]


__all__ = [
    "AUX_OBJECTIVES",
    "AuxBatch",
    "AuxObjective",
    "aux_objective_options",
    "make_aux_objective",
]
