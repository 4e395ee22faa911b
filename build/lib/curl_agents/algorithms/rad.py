"""RAD (Laskin et al., NeurIPS 2020): pixel SAC with random-crop augmentation and no auxiliary loss."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from curl_agents.algorithms.curl import CURL
from curl_agents.algorithms.pixel_sac import TrainViews
from ssl_shared.augment.crop import random_crop


class RAD(CURL):
    """Independent random crops of obs and next_obs (in that order, as RAD's ``sample_rad``), center
    crop to act, no auxiliary objective: the augmentation alone. Two crops per gradient step: RAD
    draws no contrastive positive. RAD takes no ``aux`` argument; RAD plus an objective is
    :class:`~curl_agents.algorithms.CURL` with ``aux=...``. Defaults, render size and task learning
    rates are CURL's (RAD uses the CURL code base and settings)."""

    default_aux: ClassVar[str] = "none"
    fixed_aux: ClassVar[str | None] = "none"  # RAD is the augmentation alone

    def __init__(self, policy: Any, env: Any, **kwargs: Any) -> None:
        aux = kwargs.pop("aux", "none")
        if aux not in (None, self.fixed_aux):
            raise ValueError(f"RAD has no auxiliary objective (got aux={aux!r}); use CURL(aux={aux!r}) instead")
        super().__init__(policy, env, aux="none", **kwargs)

    def make_views(self, obs: torch.Tensor, next_obs: torch.Tensor) -> TrainViews:
        size, gen = self.image_size, self.aug_generator
        view = random_crop(obs, size, generator=gen).float()
        next_view = random_crop(next_obs, size, generator=gen).float()
        return TrainViews(obs=[view], obs_pos=view, next_obs=[next_view])
