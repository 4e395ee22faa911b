"""Auxiliary (self-supervised) objectives for the pixel agents, chosen by name.

Every objective follows the contract in :mod:`curl_agents.objectives.base`: it receives an
:class:`AuxBatch` (the same augmented views for every objective), borrows the online and
critic-target encoders, owns its heads and one optimizer, and is stepped by ``update(batch)``.

The table of every objective (loss, second input, options with defaults, reference) is generated
from :data:`AUX_OBJECTIVES` and the classes' attributes: ``docs/objectives.md``
(``python -m curl_agents.objectives.table --out docs/objectives.md``).

The objectives run on the host algorithm's views: ``CURL(aux="reconstruction")`` is "RAD + AE loss"
(random crops, CURL's encoder), not SAC-AE; SAC-AE itself (no augmentation, tanh encoder, its
cadence) is the algorithm ``SacAE`` (``--algo sac_ae``).

Adding an objective: write ``curl_agents/objectives/<name>.py`` with a subclass of :class:`AuxObjective`
(formula and citation in the docstring; ``name``, ``summary``, ``second_input`` and ``citation`` as class
attributes; knobs as keyword arguments with defaults, heads built in ``__init__`` followed by
``self._finish_init()``, and ``compute_loss``), add the class to ``AUX_OBJECTIVES`` below and regenerate
``docs/objectives.md``.
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

#: The name that selects no auxiliary objective, and what it means (its row of ``docs/objectives.md``).
NO_OBJECTIVE = "none"
NO_OBJECTIVE_SUMMARY = "no auxiliary update: the host algorithm's augmented views only (RAD, DrQ)"

#: name -> objective class (keys are the classes' ``name``); ``"none"`` means no auxiliary update
#: (``make_aux_objective`` returns None).
AUX_OBJECTIVES: dict[str, type[AuxObjective] | None] = {
    NO_OBJECTIVE: None,
    **{
        cls.name: cls
        for cls in (
            CurlObjective,
            SimClrObjective,
            ByolObjective,
            SprObjective,
            MocoObjective,
            AtcObjective,
            ReconstructionObjective,
            InverseDynamicsObjective,
            ForwardDynamicsObjective,
            RotationObjective,
            SslMethodObjective,
        )
    },
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
    "NO_OBJECTIVE",
    "AuxBatch",
    "AuxObjective",
    "aux_objective_options",
    "make_aux_objective",
]
