"""The method registry: names -> classes, and :func:`build_method`.

:data:`METHODS` is the one list of SSL methods: everything else about a method (family, citation, batch
keys, config) is an attribute of its class, and ``docs/ssl_methods.md`` is generated from this registry
(``python -m ssl_shared.methods.table --out docs/ssl_methods.md``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ssl_shared.methods.arrow_of_time import ArrowOfTime
from ssl_shared.methods.base import SSLMethod, config_from_overrides
from ssl_shared.methods.byol import BYOL
from ssl_shared.methods.colorization import Colorization
from ssl_shared.methods.context_encoder import ContextEncoder
from ssl_shared.methods.contractive_ae import ContractiveAutoencoder
from ssl_shared.methods.counting import Counting
from ssl_shared.methods.cpc import CPC
from ssl_shared.methods.denoising_ae import DenoisingAutoencoder
from ssl_shared.methods.exemplar import Exemplar
from ssl_shared.methods.jigsaw import Jigsaw
from ssl_shared.methods.mae import MaskedAutoencoder
from ssl_shared.methods.moco import MoCo
from ssl_shared.methods.npid import NPID
from ssl_shared.methods.pirl import PIRL
from ssl_shared.methods.pixelcnn import PixelCNN
from ssl_shared.methods.relative_position import RelativePosition
from ssl_shared.methods.rotation import Rotation
from ssl_shared.methods.s4l import S4L
from ssl_shared.methods.shuffle_and_learn import ShuffleAndLearn
from ssl_shared.methods.simclr import SimCLR, SimCLRv2
from ssl_shared.methods.split_brain import SplitBrain
from ssl_shared.methods.supcon import SupCon
from ssl_shared.methods.tcn import TCN
from ssl_shared.methods.vae import VAE

#: name -> method class, in the order of the methods table (grouped by family).
METHODS: dict[str, type[SSLMethod]] = {
    cls.name: cls
    for cls in (
        DenoisingAutoencoder,
        ContractiveAutoencoder,
        VAE,
        ContextEncoder,
        Colorization,
        SplitBrain,
        MaskedAutoencoder,
        PixelCNN,
        RelativePosition,
        Jigsaw,
        Rotation,
        Counting,
        Exemplar,
        SimCLR,
        SimCLRv2,
        MoCo,
        PIRL,
        NPID,
        BYOL,
        SupCon,
        CPC,
        TCN,
        ShuffleAndLearn,
        ArrowOfTime,
        S4L,
    )
}


def build_method(name: str, backbone: nn.Module, feature_dim: int, **config_overrides: Any) -> SSLMethod:
    """Instantiate method ``name`` with its config defaults replaced by ``config_overrides``.

    Unknown names or options raise ``ValueError`` listing what is allowed. Nested view options are
    given as a :class:`~ssl_shared.methods.views.ViewConfig` (``views=ViewConfig(...)``) or a dict.
    """
    if name not in METHODS:
        raise ValueError(f"unknown SSL method {name!r}; available: {sorted(METHODS)}")
    cls = METHODS[name]
    config = config_from_overrides(cls.config_class, config_overrides)
    return cls(backbone, feature_dim, config=config)
