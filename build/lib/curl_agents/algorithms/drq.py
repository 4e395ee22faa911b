"""DrQ (Kostrikov, Yarats, Fergus, ICLR 2021; arXiv 2004.13649): pixel SAC with random shifts and averaged Q targets.

Every default below is the DrQ authors' code, ``denisyarats/drq`` at commit ``dd040f1``
(``config.yaml``, ``drq.py``, ``utils.py``; line numbers at that commit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from stable_baselines3.common.type_aliases import Schedule

from curl_agents.algorithms.pixel_sac import PixelSAC, TrainViews
from ssl_shared.augment.crop import random_shift


class DrQ(PixelSAC):
    """Random shift (replicate pad 4, then crop back) on 84x84 renders, with

        y = r + gamma (1 - done) * 1/K sum_k [min_i Q_targ_i(aug_k(o'), a'_k) - alpha log pi(a'_k | aug_k(o'))]
        L_Q = 1/M sum_m 0.5 sum_i MSE(Q_i(aug_m(o), a), y)

    (DrQ eq. 3 and Algorithm 1, K = M = 2). The DrQ code sums the four MSE terms without the factors
    0.5 and 1/M (``drq.py`` L245-251); the critic optimizer sees only this loss (DrQ has no auxiliary
    loss by default), and Adam's update does not depend on a constant loss scale, so the steps are
    the same. The actor and the auxiliary anchor use ``aug_1(o)`` (``drq.py`` L303 passes ``obs``);
    the auxiliary positive is ``aug_2(o)``. Views are drawn in the order ``aug_1(o), aug_2(o),
    aug_1(o'), aug_2(o')`` from ``aug_generator``. ``image_size`` must equal the render size (84):
    shifts keep the size and acting needs no crop.

    Differences from :class:`PixelSAC` (whose defaults are CURL's), all from the DrQ code:

    * the whole critic, encoder included, is soft-updated with tau 0.01 (``encoder_tau`` 0.01; CURL:
      0.05);
    * the temperature's Adam uses the global lr and Adam's default betas (1e-3, (0.9, 0.999); CURL:
      1e-4, (0.5, 0.999));
    * convolutions are initialised orthogonal with ReLU gain over the whole kernel (CURL:
      delta-orthogonal), and the encoder ends in tanh (CURL's critic encoder does not);
    * one learning rate, 1e-3, for every task (CURL: 2e-4 for cheetah-run).

    Action repeats are the PlaNet benchmark's (``curl_agents.presets``), as in DrQ's benchmark runs.

    Args:
        k_target: K, augmentations of next_obs averaged in the target (DrQ: 2).
        m_q: M, augmentations of obs the Q loss is averaged over (DrQ: 2).
        pad: shift padding in pixels (DrQ: 4).
        alpha_lr: temperature Adam lr; ``None`` (default) uses ``learning_rate``, as DrQ does.
        other arguments: as :class:`PixelSAC`, with the defaults cited in the signature.
    """

    policy_defaults: ClassVar[Mapping[str, Any]] = {
        "feature_dim": 50,  # config.yaml encoder.params.feature_dim (L73)
        "hidden_dim": 1024,  # config.yaml critic/actor hidden_dim 1024, hidden_depth 2 (L57-58, L65-66)
        "num_layers": 4,  # drq.py Encoder num_layers (L18)
        "num_filters": 32,  # drq.py Encoder num_filters (L19)
        "log_std_min": -10.0,  # config.yaml actor.params.log_std_bounds [-10, 2] (L67)
        "log_std_max": 2.0,  # config.yaml actor.params.log_std_bounds [-10, 2] (L67)
        "encoder_output_tanh": True,  # drq.py Encoder output_logits False -> tanh after LayerNorm (L21, L58-59)
        "conv_init": "orthogonal",  # utils.py weight_init: orthogonal_(conv.weight, relu gain) (L62-72)
    }
    task_learning_rates: ClassVar[Mapping[str, float]] = {}  # config.yaml `lr: 1e-3` (L28) for every task
    render_margin: ClassVar[int] = 0  # config.yaml image_size 84 (L24): renders 84; shifts keep the size

    def __init__(
        self,
        policy: Any,
        env: Any,
        learning_rate: float | Schedule = 1e-3,  # config.yaml lr (L28): actor, critic and temperature
        buffer_size: int = 100_000,  # config.yaml replay_buffer_capacity (L13)
        learning_starts: int = 1000,  # config.yaml num_seed_steps (L12), agent steps
        batch_size: int = 512,  # config.yaml L29: "please use a batch size of 512 to reproduce the results in the paper"
        tau: float = 0.01,  # config.yaml agent.params.critic_tau (L48)
        encoder_tau: float = 0.01,  # drq.py L305-307: soft_update_params(critic, critic_target, critic_tau)
        gamma: float = 0.99,  # config.yaml agent.params.discount (L44)
        init_temperature: float = 0.1,  # config.yaml agent.params.init_temperature (L45)
        alpha_lr: float | None = None,  # drq.py L197: Adam([log_alpha], lr=lr), the global lr
        alpha_betas: tuple[float, float] = (0.9, 0.999),  # drq.py L197: Adam's default betas
        actor_update_freq: int = 2,  # config.yaml agent.params.actor_update_frequency (L47)
        target_update_interval: int = 2,  # config.yaml agent.params.critic_target_update_frequency (L49)
        image_size: int = 84,  # config.yaml image_size (L24)
        k_target: int = 2,  # drq.py update_critic: target averaged over next_obs and next_obs_aug (L222-241)
        m_q: int = 2,  # drq.py update_critic: Q loss on obs and obs_aug (L244-251)
        pad: int = 4,  # config.yaml image_pad (L25); replay_buffer.py ReplicationPad2d + RandomCrop (L16-18)
        **kwargs: Any,
    ) -> None:
        for name, value in (("k_target", k_target), ("m_q", m_q)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
        self.k_target, self.m_q, self.pad = k_target, m_q, pad
        if alpha_lr is None:
            alpha_lr = float(learning_rate(1.0)) if callable(learning_rate) else float(learning_rate)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            encoder_tau=encoder_tau,
            gamma=gamma,
            init_temperature=init_temperature,
            alpha_lr=alpha_lr,
            alpha_betas=alpha_betas,
            actor_update_freq=actor_update_freq,
            target_update_interval=target_update_interval,
            image_size=image_size,
            **kwargs,
        )

    def _setup_model(self) -> None:
        height = self.observation_space.shape[-1]
        if self.image_size != height:
            raise ValueError(
                f"DrQ shifts keep the image size: image_size ({self.image_size}) must equal "
                f"the render size ({height}); render at {self.image_size} (make_env image_size)"
            )
        super()._setup_model()

    def make_views(self, obs: torch.Tensor, next_obs: torch.Tensor) -> TrainViews:
        gen, pad = self.aug_generator, self.pad
        obs_views = [random_shift(obs, pad, generator=gen).float() for _ in range(max(self.m_q, 2))]
        next_views = [random_shift(next_obs, pad, generator=gen).float() for _ in range(self.k_target)]
        return TrainViews(obs=obs_views[: self.m_q], obs_pos=obs_views[1], next_obs=next_views)
