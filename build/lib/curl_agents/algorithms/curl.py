"""CURL (Srinivas, Laskin, Abbeel, ICML 2020): pixel SAC + random crop + a contrastive auxiliary loss."""

from __future__ import annotations

from typing import ClassVar

import torch

from curl_agents.algorithms.pixel_sac import PixelSAC, TrainViews
from ssl_shared.augment.crop import random_crop


class CURL(PixelSAC):
    """Pixel SAC trained on random crops (100 -> 84, offsets 0..16 inclusive) with an auxiliary objective.

    Views per gradient step, as in the CURL code (``sample_cpc``): three independent random crops,
    drawn in this order from ``aug_generator``: one of obs (critic view, actor input and contrastive
    anchor), one more of obs (the positive key, encoded by the critic-target encoder) and one of
    next_obs (critic target). Acting uses the center crop (inside the policy). ``aux="curl"``
    (bilinear InfoNCE against the momentum key encoder) by default; any name of
    ``curl_agents.objectives.AUX_OBJECTIVES`` swaps it, with ``aux_kwargs`` (e.g. ``{"latent_dim": 128}``:
    CURL's ``curl_latent_dim``, which the official code silently ignores). All other defaults are
    :class:`PixelSAC`'s (the CURL paper's); render ``image_size + 16`` (CURL ``train.py``
    ``pre_transform_image_size`` 100 for ``image_size`` 84).
    """

    default_aux: ClassVar[str] = "curl"
    render_margin: ClassVar[int] = 16  # CURL train.py: render 100 (pre_transform_image_size), crop 84

    def make_views(self, obs: torch.Tensor, next_obs: torch.Tensor) -> TrainViews:
        size, gen = self.image_size, self.aug_generator
        anchor = random_crop(obs, size, generator=gen).float()
        positive = random_crop(obs, size, generator=gen).float()
        next_view = random_crop(next_obs, size, generator=gen).float()
        return TrainViews(obs=[anchor], obs_pos=positive, next_obs=[next_view])
