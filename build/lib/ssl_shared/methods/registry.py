"""The method registry: names -> classes, and :func:`build_method`."""

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

# (family, citation) per method, for documentation tables.
FAMILIES: dict[str, tuple[str, str]] = {
    "denoising_ae": ("self-prediction", "Vincent et al. 2008"),
    "contractive_ae": ("self-prediction", "Rifai et al. 2011"),
    "vae": ("self-prediction", "Kingma & Welling 2014"),
    "context_encoder": ("self-prediction", "Pathak et al. 2016"),
    "colorization": ("self-prediction", "Zhang, Isola & Efros 2016"),
    "split_brain": ("self-prediction", "Zhang, Isola & Efros 2017"),
    "mae": ("self-prediction", "He et al. 2022"),
    "pixelcnn": ("self-prediction (autoregressive)", "van den Oord et al. 2016"),
    "relative_position": ("innate relationship", "Doersch, Gupta & Efros 2015"),
    "jigsaw": ("innate relationship", "Noroozi & Favaro 2016"),
    "rotation": ("innate relationship", "Gidaris, Singh & Komodakis 2018"),
    "counting": ("innate relationship", "Noroozi, Pirsiavash & Favaro 2017"),
    "exemplar": ("contrastive", "Dosovitskiy et al. 2014"),
    "simclr": ("contrastive", "Chen et al. 2020a"),
    "simclr_v2": ("contrastive", "Chen et al. 2020b"),
    "moco_v2": ("contrastive", "He et al. 2020; Chen et al. 2020c"),
    "pirl": ("contrastive", "Misra & van der Maaten 2020"),
    "npid": ("contrastive", "Wu et al. 2018"),
    "byol": ("distillation", "Grill et al. 2020"),
    "supcon": ("contrastive (supervised)", "Khosla et al. 2020"),
    "cpc": ("contrastive (predictive)", "van den Oord et al. 2018; Henaff et al. 2020"),
    "tcn": ("temporal", "Sermanet et al. 2018"),
    "shuffle_and_learn": ("temporal", "Misra, Zitnick & Hebert 2016"),
    "arrow_of_time": ("temporal", "Wei et al. 2018"),
    "s4l": ("semi-supervised", "Zhai et al. 2019"),
}

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
