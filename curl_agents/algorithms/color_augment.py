"""Colour augmentation of the critic's views, the appearance-robustness baselines of DMControl-GB.

``PixelSAC(..., color_augment="random_conv" | "color_jitter")`` (and every subclass: CURL, RAD, DrQ,
SAC-AE) trains the critic on each geometric view of ``obs`` AND a colour-augmented copy of it, with the
target computed from the un-augmented ``next_obs`` views and the actor and auxiliary objective on the
un-augmented views. This is SVEA's objective (Hansen, Su, Wang 2021, arXiv 2107.00644, eq. 7 with
alpha = beta = 0.5: the critic loss is the mean over the 2M views), the way DMControl-GB (Hansen & Wang
2021, arXiv 2011.13389) trains its random-convolution agent; augmenting the target's views destabilises
learning (SVEA, Sec. 4).

The augmentations, from ``ssl_shared.augment`` on float views in 0..255, shared by all frames of a stack:

* ``random_conv``: one random 3x3 convolution per batch, Xavier-normal weights, clamped to 0..255
  (Lee et al. 2020, arXiv 1910.05396; RAD's ``random_convolution``, MishaLaskin/rad ``data_augs.py``,
  draws one per chunk of the batch likewise);
* ``color_jitter``: brightness, contrast, saturation 0.4 and hue 0.5 per sample, in random order (RAD's
  ``random_color_jitter``, MishaLaskin/rad ``data_augs.py``: ``ColorJitterLayer(0.4, 0.4, 0.4, 0.5, p=1)``).

Draws come from the algorithm's ``aug_generator`` after the geometric views, so ``"none"`` (the default)
leaves every run exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from ssl_shared.augment import color_jitter, random_conv

if TYPE_CHECKING:
    from curl_agents.algorithms.pixel_sac import TrainViews

PIXEL_MAX = 255.0  # views are float copies of uint8 frames

ColorOp = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _random_conv(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return random_conv(x, 3, max_value=PIXEL_MAX, generator=generator)


def _color_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return color_jitter(x, 0.4, 0.4, 0.4, 0.5, max_value=PIXEL_MAX, generator=generator)


#: ``color_augment`` names -> the op (``None``: no colour views).
COLOR_AUGMENTS: dict[str, ColorOp | None] = {"none": None, "random_conv": _random_conv, "color_jitter": _color_jitter}


def check_color_augment(name: str) -> str:
    """``name`` if registered, else ``ValueError`` listing :data:`COLOR_AUGMENTS`."""
    if name not in COLOR_AUGMENTS:
        raise ValueError(f"color_augment {name!r} unknown; allowed: {', '.join(COLOR_AUGMENTS)}")
    return name


def add_color_views(views: TrainViews, name: str, generator: torch.Generator) -> TrainViews:
    """``views`` with a colour-augmented copy of each critic view appended to ``views.obs`` (module docstring)."""
    op = COLOR_AUGMENTS[check_color_augment(name)]
    if op is None:
        return views
    return replace(views, obs=[*views.obs, *(op(view, generator) for view in views.obs)])
