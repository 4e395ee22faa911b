"""The pixel SAC policy of CURL / RAD / DrQ as a stable-baselines3 policy.

Three networks, one encoder convention (SAC-AE, Yarats et al. 2019; CURL, Srinivas et al. 2020):

* ``critic``: a :class:`~ssl_shared.encoders.PixelEncoder` followed by two Q heads (MLPs 1024x2).
  The encoder (convs + linear + LayerNorm) is trained by the critic loss and, in CURL, by the
  auxiliary objective.
* ``actor``: its own encoder linear + LayerNorm and a tanh-Gaussian head (MLP 1024x2), but its
  convolutions ARE the critic's (``tie_conv_weights``: the same ``nn.Parameter`` objects) and it
  reads them **detached**, so the actor loss never reaches the convolutions.
* ``critic_target``: a full copy of the critic, encoder included, moved by EMA (Q heads tau 0.01,
  encoder tau 0.05). Its encoder is CURL's momentum ("key") encoder.

Why not SB3's ``share_features_extractor=True``: SB3 then excludes the shared extractor from the
critic optimizer and computes the critic under ``set_grad_enabled(False)`` for the features, so
the shared CNN is trained by the *actor* loss only. SAC-AE/CURL/RAD/DrQ do the opposite (critic and
auxiliary losses train the encoder, the actor is detached); SB3's default (three independent CNNs)
loses the conv sharing altogether. Hence this policy builds its own networks.

Observations: the policy is built on the *raw* env observation space (e.g. ``(9, 100, 100)``
uint8) and center-crops to ``image_size`` inside :meth:`CurlSACPolicy._predict`, so
``model.predict(env_obs)`` and ``evaluate_policy`` work on what the env returns. Training code
feeds the already-augmented ``image_size`` views to ``actor`` / ``critic`` directly.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from torch.nn import functional as F

from ssl_shared.augment.crop import center_crop
from ssl_shared.encoders import PixelEncoder, tie_conv_weights


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, out_dim),
    )


CONV_INITS = ("delta_orthogonal", "orthogonal")


def init_weights(module: nn.Module, conv_init: str = "delta_orthogonal") -> None:
    """Orthogonal linear layers (gain 1) and zero biases; convolutions (and transposed convolutions) by ``conv_init``:

    * ``"delta_orthogonal"``: zero kernel except an orthogonal centre tap with ReLU gain (SAC-AE
      ``denisyarats/pytorch_sac_ae`` ``sac_ae.py::weight_init``; CURL ``curl_sac.py::weight_init``);
    * ``"orthogonal"``: the whole kernel, flattened, orthogonal with ReLU gain (DrQ
      ``denisyarats/drq`` ``utils.py::weight_init``).
    """
    if conv_init not in CONV_INITS:
        raise ValueError(f"conv_init must be one of {CONV_INITS}, got {conv_init!r}")
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        gain = nn.init.calculate_gain("relu")
        if conv_init == "orthogonal":
            nn.init.orthogonal_(module.weight, gain)
        else:
            mid = module.weight.size(2) // 2
            with torch.no_grad():
                module.weight.zero_()
                nn.init.orthogonal_(module.weight[:, :, mid, mid], gain)
        nn.init.zeros_(module.bias)


def squashed_gaussian_log_prob(mu: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) of ``a = tanh(u)``, ``u = mu + std * noise``, summed over action dimensions:

    log N(u; mu, std) - sum_i log(1 - tanh(u_i)^2),
    log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u))      (numerically stable form)
    """
    u = mu + log_std.exp() * noise
    gauss = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
    correction = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1, keepdim=True)
    return gauss - correction


class CurlActor(nn.Module):
    """tanh-Gaussian policy on detached conv features; log-std squashed into [log_std_min, log_std_max]."""

    def __init__(
        self, encoder: PixelEncoder, action_dim: int, hidden_dim: int, log_std_min: float, log_std_max: float
    ) -> None:
        super().__init__()
        if not log_std_min < log_std_max:
            raise ValueError(f"log_std_min must be < log_std_max, got {log_std_min}, {log_std_max}")
        self.encoder = encoder
        self.trunk = _mlp(encoder.feature_dim, hidden_dim, 2 * action_dim)
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max
        self.optimizer: torch.optim.Optimizer

    def own_parameters(self) -> list[nn.Parameter]:
        """Parameters the actor loss trains: everything except the (tied, detached) convolutions."""
        conv_ids = {id(p) for p in self.encoder.convs.parameters()}
        return [p for p in self.parameters() if id(p) not in conv_ids]

    def dist_params(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.trunk(features).float().chunk(2, dim=-1)  # fp32 under bf16 autocast too
        log_std = torch.tanh(log_std)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1)
        return mu, log_std

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs, detach=True)

    def sample_from_features(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action in (-1, 1) and its log-probability ``(B, 1)``."""
        mu, log_std = self.dist_params(features)
        noise = torch.randn_like(mu)
        action = torch.tanh(mu + log_std.exp() * noise)
        return action, squashed_gaussian_log_prob(mu, log_std, noise)

    def action_log_prob(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample_from_features(self.features(obs))

    def forward(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        features = self.features(obs)
        if deterministic:
            return torch.tanh(self.dist_params(features)[0])
        return self.sample_from_features(features)[0]


class CurlCritic(nn.Module):
    """Encoder + two Q heads ``Q_i(encoder(obs), action)``."""

    def __init__(self, encoder: PixelEncoder, action_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.q1 = _mlp(encoder.feature_dim + action_dim, hidden_dim, 1)
        self.q2 = _mlp(encoder.feature_dim + action_dim, hidden_dim, 1)
        self.optimizer: torch.optim.Optimizer

    def q_from_features(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([features, action], dim=-1)
        return self.q1(x).float(), self.q2(x).float()  # fp32 Q values under bf16 autocast too

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, detach_encoder: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q_from_features(self.encoder(obs, detach=detach_encoder), action)


class CurlSACPolicy(BasePolicy):
    """Actor, critic and critic target of pixel SAC with the SAC-AE/CURL encoder sharing.

    Args:
        observation_space: raw env observations, ``Box(0, 255, (C, H, W), uint8)``.
        action_space: ``Box`` (SB3 rescales to [-1, 1]).
        lr_schedule: SB3 learning-rate schedule (CURL: constant 1e-3; 2e-4 for cheetah).
        image_size: side of the network input; observations larger than this are center-cropped
            when acting (CURL: 84 from a 100 render).
        feature_dim, num_layers, num_filters: encoder (CURL: 50, 4, 32).
        hidden_dim: width of the two hidden layers of the actor and each Q head (CURL: 1024).
        log_std_min, log_std_max: actor log-std range (CURL: -10, 2).
        encoder_output_tanh: tanh after the encoder LayerNorm (CURL: no; SAC-AE/DrQ: yes).
        conv_init: ``"delta_orthogonal"`` (CURL, SAC-AE) or ``"orthogonal"`` (DrQ); see :func:`init_weights`.
        optimizer_kwargs: Adam kwargs besides the lr (default: CURL's betas (0.9, 0.999), fused kernel).
    """

    actor: CurlActor
    critic: CurlCritic
    critic_target: CurlCritic

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        image_size: int = 84,
        feature_dim: int = 50,
        num_layers: int = 4,
        num_filters: int = 32,
        hidden_dim: int = 1024,
        log_std_min: float = -10.0,
        log_std_max: float = 2.0,
        encoder_output_tanh: bool = False,
        conv_init: str = "delta_orthogonal",
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        use_sde: bool = False,
    ) -> None:
        if use_sde:
            raise ValueError("use_sde=True is not supported by CurlSACPolicy; use use_sde=False")
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(f"CurlSACPolicy needs (C, H, W) image observations, got {observation_space}")
        channels, height, width = observation_space.shape
        if conv_init not in CONV_INITS:
            raise ValueError(f"conv_init must be one of {CONV_INITS}, got {conv_init!r}")
        if not 0 < image_size <= min(height, width):
            raise ValueError(
                f"image_size must be in [1, {min(height, width)}] for observations "
                f"{observation_space.shape}, got {image_size}"
            )
        if optimizer_kwargs is None:
            # CURL appendix: Adam betas (0.9, 0.999). fused=True: the same Adam update in one kernel
            # (about 5x faster than the per-tensor loop on CPU for these ~4M-parameter networks).
            optimizer_kwargs = {"betas": (0.9, 0.999), "fused": True}
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=False,
        )
        self.image_size = image_size
        self.encoder_kwargs = {
            "obs_shape": (channels, image_size, image_size),
            "feature_dim": feature_dim,
            "num_layers": num_layers,
            "num_filters": num_filters,
            "output_tanh": encoder_output_tanh,
        }
        self.hidden_dim = hidden_dim
        self.conv_init = conv_init
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        action_dim = int(spaces.flatdim(self.action_space))
        self.critic = CurlCritic(PixelEncoder(**self.encoder_kwargs), action_dim, self.hidden_dim)
        self.actor = CurlActor(
            PixelEncoder(**self.encoder_kwargs), action_dim, self.hidden_dim, self.log_std_min, self.log_std_max
        )
        init = functools.partial(init_weights, conv_init=self.conv_init)
        self.critic.apply(init)
        self.actor.apply(init)
        tie_conv_weights(self.critic.encoder, self.actor.encoder)
        self.critic_target = copy.deepcopy(self.critic)
        self.critic_target.requires_grad_(False)
        self.critic_target.train(False)
        lr = lr_schedule(1)
        self.critic.optimizer = self.optimizer_class(self.critic.parameters(), lr=lr, **self.optimizer_kwargs)
        self.actor.optimizer = self.optimizer_class(self.actor.own_parameters(), lr=lr, **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("normalize_images", None)
        data.update(
            image_size=self.image_size,
            feature_dim=self.encoder_kwargs["feature_dim"],
            num_layers=self.encoder_kwargs["num_layers"],
            num_filters=self.encoder_kwargs["num_filters"],
            encoder_output_tanh=self.encoder_kwargs["output_tanh"],
            conv_init=self.conv_init,
            hidden_dim=self.hidden_dim,
            log_std_min=self.log_std_min,
            log_std_max=self.log_std_max,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )
        return data

    def acting_view(self, obs: torch.Tensor) -> torch.Tensor:
        """Center crop of raw observations to the network input size (identity when equal)."""
        if obs.shape[-1] == self.image_size and obs.shape[-2] == self.image_size:
            return obs
        return center_crop(obs, self.image_size)

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:  # type: ignore[override]
        return self.actor(self.acting_view(observation), deterministic=deterministic)

    def set_training_mode(self, mode: bool) -> None:
        self.actor.train(mode)
        self.critic.train(mode)
        self.training = mode


CnnPolicy = CurlSACPolicy
