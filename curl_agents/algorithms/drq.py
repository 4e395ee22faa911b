"""DrQ (Kostrikov, Yarats, Fergus, ICLR 2021): pixel SAC with random shifts and averaged Q targets."""

from __future__ import annotations

from typing import Any

import torch

from curl_agents.algorithms.pixel_sac import PixelSAC, TrainViews
from ssl_shared.augment.crop import random_shift


class DrQ(PixelSAC):
    """Random shift (replicate pad 4, then crop back) on 84x84 renders, with

        y = r + gamma (1 - done) * 1/K sum_k [min_i Q_targ_i(aug_k(o'), a'_k) - alpha log pi(a'_k | aug_k(o'))]
        L_Q = 1/M sum_m 0.5 sum_i MSE(Q_i(aug_m(o), a), y)

    (DrQ eq. 3 and Algorithm 1, K = M = 2). The actor and the auxiliary anchor use ``aug_1(o)``;
    the auxiliary positive is ``aug_2(o)`` (a second independent shift). DrQ's encoder ends in tanh
    (``encoder_output_tanh=True`` in the policy); the rest are the shared CURL/SAC-AE defaults of
    :class:`PixelSAC`. ``image_size`` must equal the render size (84): shifts keep the size and
    acting needs no crop. DrQ has no auxiliary loss by default (``aux="none"``).

    Args:
        k_target: K, augmentations of next_obs averaged in the target (DrQ: 2).
        m_q: M, augmentations of obs the Q loss is averaged over (DrQ: 2).
        pad: shift padding in pixels (DrQ: 4).
    """

    def __init__(self, policy: Any, env: Any, k_target: int = 2, m_q: int = 2, pad: int = 4, **kwargs: Any) -> None:
        for name, value in (("k_target", k_target), ("m_q", m_q)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
        self.k_target, self.m_q, self.pad = k_target, m_q, pad
        policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
        policy_kwargs.setdefault("encoder_output_tanh", True)  # DrQ encoder: LayerNorm then tanh
        super().__init__(policy, env, policy_kwargs=policy_kwargs, **kwargs)

    def _setup_model(self) -> None:
        height = self.observation_space.shape[-1]
        if self.image_size != height:
            raise ValueError(f"DrQ shifts keep the image size: image_size ({self.image_size}) must equal "
                             f"the render size ({height}); render at {self.image_size} (make_env image_size)")
        super()._setup_model()

    def make_views(self, obs: torch.Tensor, next_obs: torch.Tensor) -> TrainViews:
        gen, pad = self.aug_generator, self.pad
        obs_views = [random_shift(obs, pad, generator=gen).float() for _ in range(max(self.m_q, 2))]
        next_views = [random_shift(next_obs, pad, generator=gen).float() for _ in range(self.k_target)]
        return TrainViews(obs=obs_views[: self.m_q], obs_pos=obs_views[1], next_obs=next_views)
