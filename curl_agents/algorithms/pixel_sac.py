"""Pixel SAC as a stable-baselines3 off-policy algorithm; the base of CURL, RAD, DrQ and SAC-AE.

One gradient step (:meth:`PixelSAC.train`), following the CURL code's order (curl_sac.py update()):

1. sample a uint8 batch (on the training device) and build the augmented float views (subclass hook
   :meth:`PixelSAC.make_views`; here: center crop, i.e. no augmentation);
2. critic:  y = r + gamma * (1 - done) * mean_k [ min_i Q_targ_i(o'_k, a'_k) - alpha * log pi(a'_k | o'_k) ],
            a'_k ~ pi(. | o'_k),  L_Q = 0.5 * mean_m sum_i MSE(Q_i(o_m, a), y)
   (one view each in CURL/RAD/pixel SAC, K = M = 2 views in DrQ). The 0.5 follows SB3; the CURL code
   sums without it, which Adam makes equivalent (the critic optimizer sees only this loss);
3. every ``actor_update_freq`` steps: actor  L_pi = mean[ alpha * log pi(a|o) - min_i Q_i(o, a) ],
   a ~ pi(.|o), on detached conv features (the actor loss never reaches the convolutions) with the
   critic's features held fixed; temperature  L_alpha = mean[ alpha * (-log pi(a|o) - H_target) ]
   (the CURL code's form, on alpha rather than log alpha);
4. every ``target_update_interval`` steps: EMA of the Q heads (``tau``) and of the encoder
   (``encoder_tau``) into the critic target, then ``aux.after_target_update()``;
5. the auxiliary objective (if any) takes one step of its own optimizer on the same views.

Cadence: "every n steps" counts gradient steps over the whole run (``_n_updates``, 0 at the first
update), not the loop index of one ``train()`` call: SB3's ``learn`` calls ``train(1, batch)`` once per
agent step, so with the defaults the actor, the temperature and the target move at gradient steps
0, 2, 4, ... (the CURL code: ``step % actor_update_freq == 0`` with the agent step, which is even at the
first update, ``init_steps`` = 1000).

Augmentation randomness comes from ``aug_generator``, a ``torch.Generator`` on the training device
seeded from its own stream, child 0 of ``numpy.random.SeedSequence(seed)`` (:func:`augmentation_seed`),
so crops are independent of the global torch RNG that SB3 seeds with ``seed``. ``save()`` stores the
generator's state and ``load()`` restores it, so a loaded model continues the crop stream it was
saved in (on the same device type; loaded on another device type it is re-seeded, with a warning).

A non-finite loss raises :class:`ssl_shared.errors.NonFiniteLossError` naming the loss, the gradient
step and the agent step, before the optimizer step that would spread it.

Steps: SB3's ``learn(total_timesteps)`` counts agent steps (``env.step`` calls), like the CURL code;
the paper's budgets are env steps (agent steps x action repeat). ``python -m curl_agents.train
--env-steps`` takes env steps and converts. ``learning_starts`` (1000) is in agent steps, as in CURL.
"""

from __future__ import annotations

import io
import math
import pathlib
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from torch.nn import functional as F

from curl_agents.algorithms.color_augment import add_color_views, check_color_augment
from curl_agents.algorithms.run_names import RunsNamedAfterClass
from curl_agents.policies import CnnPolicy, CurlActor, CurlCritic, CurlSACPolicy
from ssl_shared.augment.crop import center_crop
from ssl_shared.errors import NonFiniteLossError
from ssl_shared.momentum import polyak_update
from ssl_shared.precision import PRECISIONS, autocast, resolve_precision


@dataclass
class TrainViews:
    """Augmented float views (0..255) of one replay batch.

    ``obs``: the M views the critic is trained on (``obs[0]`` also feeds the actor and is the aux
    anchor); ``obs_pos``: an independent second view for the auxiliary objective; ``next_obs``: the
    K views the target is averaged over (``next_obs[0]`` is the aux's next observation).
    """

    obs: list[torch.Tensor]
    obs_pos: torch.Tensor
    next_obs: list[torch.Tensor]


def augmentation_seed(seed: int | None) -> int:
    """Seed of the augmentation generator: the first 64-bit word of ``SeedSequence(seed)``'s child 0
    (``SeedSequence(seed).spawn(1)[0]``, i.e. ``SeedSequence(seed, spawn_key=(0,))``) shifted right by
    one bit (``torch.Generator.manual_seed`` takes 63 bits). ``seed=None`` draws fresh OS entropy."""
    child = np.random.SeedSequence(seed).spawn(1)[0]
    return int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class PixelSAC(RunsNamedAfterClass, OffPolicyAlgorithm):
    """SAC from pixels with the SAC-AE/CURL encoder convention; no augmentation (the pixel SAC baseline).

    Render at the network input size (``image_size``, 84): the baseline of the CURL and SAC-AE tables
    renders 84x84 directly and trains on it unaugmented. A larger render is accepted and center-cropped
    to ``image_size`` for acting and training alike, which shows the network a zoomed view: not the
    baseline. ``python -m curl_agents.train --algo pixel_sac`` renders at ``image_size``
    (``render_margin`` 0).

    Defaults are the CURL paper's (Srinivas et al. 2020, appendix table; official ``train.py``):

    Args:
        policy: ``"CnnPolicy"`` (= :class:`~curl_agents.policies.CurlSACPolicy`) or the class.
        env: env or id; observations ``Box(0, 255, (3k, H, W), uint8)``, actions ``Box``.
        learning_rate: actor, critic (and encoder) lr, 1e-3 (the CURL appendix's 2e-4 for cheetah-run
            is ``task_learning_rates``, applied by the train command).
        buffer_size: replay capacity in transitions (agent steps), 100_000.
        learning_starts: random-action agent steps before the first update, 1000.
        batch_size: 512, the author's statement for the final paper runs (CURL issue #15); the
            repo's command uses 128, its train.py default is 32.
        tau: EMA weight of the Q heads, 0.01.
        encoder_tau: EMA weight of the encoder (CURL's key encoder), 0.05.
        gamma: 0.99.
        init_temperature: initial alpha, 0.1.
        alpha_lr, alpha_betas: temperature Adam, 1e-4 and (0.5, 0.999).
        target_entropy: ``"auto"`` = -|A|.
        actor_update_freq: actor and alpha every 2 gradient steps.
        target_update_interval: EMA every 2 gradient steps.
        image_size: network input side, 84 (crop of a 100 render).
        aux: auxiliary objective name (``curl_agents.objectives.AUX_OBJECTIVES``), ``"none"`` here.
        aux_kwargs: extra kwargs of the objective (e.g. ``{"latent_dim": 128}`` for ``curl``).
        aux_lr, aux_weight: the objective's Adam lr (CURL encoder lr 1e-3) and loss weight.
        precision: ``"fp32"`` (default, the papers' arithmetic), ``"bf16"`` (autocast of the encoder, actor
            and critic forward passes to bfloat16; fp32 weights, optimizer states and losses) or ``"auto"``
            (bf16 where the device has bf16 matrix units: AMX / AVX-512-BF16 CPUs, bf16 CUDA GPUs; see
            :mod:`ssl_shared.precision`). ``resolved_precision`` holds what runs. Acting stays fp32.
        fused_encoder_step: ``False`` (default, the paper's order): the critic loss and the auxiliary loss
            each run the encoder forward and backward on the anchor view and each take an optimizer step.
            ``True``: one encoder forward on the anchor view feeds both losses, and one backward of
            ``critic_loss + aux_weight * aux_loss`` is followed by one step of the critic optimizer
            (encoder and Q heads) and one of the objective's head-only optimizer. It saves one encoder
            forward and backward per gradient step; the auxiliary loss then sees the encoder before the
            critic step (and the key encoder before that step's EMA), not after it. Needs an objective.
        compile_encoders: ``torch.compile`` the three pixel encoders (critic, critic target, actor) in place
            with the default inductor backend. The arithmetic is the same up to the rounding of fused
            kernels; the first gradient step and the first action after a batch-size change compile.
            Whether it pays depends on the device and precision (see ``benchmarks/results``).
        color_augment: ``"none"``, or ``"random_conv"`` / ``"color_jitter"``: the critic also trains on a
            colour-augmented copy of each view (SVEA's objective; :mod:`curl_agents.algorithms.color_augment`).
        replay_buffer_class / replay_buffer_kwargs: default
            :class:`curl_agents.replay.FrameReplayBuffer` (each frame stored once, sampled on the device).
        policy_kwargs: forwarded to the policy (``feature_dim``, ``hidden_dim``, ...); entries missing
            there take ``policy_defaults``, then :class:`~curl_agents.policies.CurlSACPolicy`'s defaults.

    Class attributes (read by ``python -m curl_agents.train`` and ``curl_agents.defaults_table``):
        default_aux: the objective ``aux=None`` selects.
        fixed_aux: the only objective the algorithm accepts (RAD: ``"none"``, SAC-AE:
            ``"reconstruction"``); ``None``: any of ``AUX_OBJECTIVES``.
        default_aux_kwargs: options of the objective set by this algorithm (``aux_kwargs`` entries win).
        policy_defaults: policy settings this algorithm changes from the policy's (CURL) defaults.
        task_learning_rates: ``learning_rate`` per task id where the paper used another one.
        render_margin: rendered side minus ``image_size`` (0: no crop; CURL/RAD: 16, render 100 for 84).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": CnnPolicy, "CurlSACPolicy": CurlSACPolicy}
    policy: CurlSACPolicy
    actor: CurlActor
    critic: CurlCritic
    critic_target: CurlCritic
    default_aux: ClassVar[str] = "none"
    fixed_aux: ClassVar[str | None] = None  # any objective of curl_agents.objectives.AUX_OBJECTIVES
    policy_defaults: ClassVar[Mapping[str, Any]] = {}
    # CURL appendix table: lr 2e-4 for cheetah-run, 1e-3 (``learning_rate``) otherwise
    task_learning_rates: ClassVar[Mapping[str, float]] = {"cheetah-run": 2e-4}
    render_margin: ClassVar[int] = 0  # pixel SAC baseline (CURL / SAC-AE tables): 84x84 renders, no crop
    default_aux_kwargs: ClassVar[Mapping[str, Any]] = {}  # options of default_aux this algorithm sets

    def __init__(
        self,
        policy: str | type[CurlSACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 100_000,
        learning_starts: int = 1000,
        batch_size: int = 512,
        tau: float = 0.01,
        encoder_tau: float = 0.05,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        init_temperature: float = 0.1,
        alpha_lr: float = 1e-4,
        alpha_betas: tuple[float, float] = (0.5, 0.999),
        target_entropy: str | float = "auto",
        actor_update_freq: int = 2,
        target_update_interval: int = 2,
        image_size: int = 84,
        aux: str | None = None,
        aux_kwargs: dict[str, Any] | None = None,
        aux_lr: float = 1e-3,
        aux_weight: float = 1.0,
        precision: str = "fp32",
        fused_encoder_step: bool = False,
        compile_encoders: bool = False,
        color_augment: str = "none",
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        _check_positive_int("actor_update_freq", actor_update_freq)
        check_color_augment(color_augment)
        _check_positive_int("target_update_interval", target_update_interval)
        if not init_temperature > 0:
            raise ValueError(f"init_temperature must be > 0, got {init_temperature}")
        for name, value in (("tau", tau), ("encoder_tau", encoder_tau)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        policy_kwargs = {**self.policy_defaults, **(policy_kwargs or {})}
        if policy_kwargs.setdefault("image_size", image_size) != image_size:
            raise ValueError(f"policy_kwargs image_size {policy_kwargs['image_size']} != image_size {image_size}")
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=None,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        self.encoder_tau = encoder_tau
        self.init_temperature = init_temperature
        self.alpha_lr = alpha_lr
        self.alpha_betas = tuple(alpha_betas)
        self.target_entropy = target_entropy
        self.actor_update_freq = actor_update_freq
        self.target_update_interval = target_update_interval
        self.image_size = image_size
        self.aux = self.default_aux if aux is None else aux
        base_aux_kwargs = self.default_aux_kwargs if self.aux == self.default_aux else {}
        self.aux_kwargs = {**base_aux_kwargs, **(aux_kwargs or {})}
        self.aux_lr = aux_lr
        self.aux_weight = aux_weight
        self.color_augment = color_augment
        self.aux_objective: torch.nn.Module | None = None
        self.precision = precision
        self.fused_encoder_step = bool(fused_encoder_step)
        self.compile_encoders = bool(compile_encoders)
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        if self.replay_buffer_class is None:
            self.replay_buffer_class = _default_replay_class()
        super()._setup_model()
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        if self.compile_encoders:
            for encoder in (self.critic.encoder, self.critic_target.encoder, self.actor.encoder):
                encoder.compile()  # in place: parameters and state_dict keys stay those of the module
        if self.target_entropy == "auto":
            self.target_entropy = -float(np.prod(self.action_space.shape))  # CURL: -|A|
        self.target_entropy = float(self.target_entropy)
        self.log_alpha = torch.tensor([math.log(self.init_temperature)], device=self.device, requires_grad=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=self.alpha_lr, betas=self.alpha_betas)
        self.aug_generator = torch.Generator(device=self.device)
        self.aug_generator.manual_seed(augmentation_seed(self.seed))
        saved = self.__dict__.pop("_saved_aug_generator_state", None)  # put there by load()
        if saved is not None:
            self._restore_aug_generator(saved)
        self.aux_objective = self._make_aux_objective()
        self.resolved_precision = resolve_precision(self.precision, self.device)
        if self.aux_objective is not None:
            self.aux_objective.forward_context = self._autocast
            if self.fused_encoder_step:
                if getattr(self.aux_objective, "encoder_optimizer", None) is not None:
                    raise ValueError(
                        "fused_encoder_step takes one encoder step per gradient step; it cannot be "
                        "combined with the objective's second encoder optimizer (official_double_step)"
                    )
                self.aux_objective.exclude_encoder_from_optimizer()

    def _restore_aug_generator(self, saved: dict[str, Any]) -> None:
        if saved["device_type"] != self.aug_generator.device.type:
            warnings.warn(
                f"the augmentation generator was saved on {saved['device_type']} and cannot continue on "
                f"{self.aug_generator.device.type}; it is re-seeded, so the crop stream differs from the saved run",
                stacklevel=3,
            )
            return
        self.aug_generator.set_state(torch.from_numpy(np.array(saved["state"], dtype=np.uint8)))

    def _make_aux_objective(self) -> torch.nn.Module | None:
        from curl_agents.objectives import make_aux_objective

        return make_aux_objective(
            self.aux,
            self.critic.encoder,
            self.critic_target.encoder,
            int(np.prod(self.action_space.shape)),
            lr=self.aux_lr,
            weight=self.aux_weight,
            **self.aux_kwargs,
        )

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # ------------------------------------------------------------------------------------------ views
    def make_views(self, obs: torch.Tensor, next_obs: torch.Tensor) -> TrainViews:
        """No augmentation: the center crop (the acting view) of obs and next_obs, as float."""
        view = center_crop(obs, self.image_size).float()
        return TrainViews(obs=[view], obs_pos=view, next_obs=[center_crop(next_obs, self.image_size).float()])

    # ------------------------------------------------------------------------------------------ losses
    def target_q(self, reward: torch.Tensor, done: torch.Tensor, next_views: list[torch.Tensor]) -> torch.Tensor:
        """``r + gamma (1 - done) mean_k [min_i Q_targ_i(o'_k, a'_k) - alpha log pi(a'_k|o'_k)]``, no grad."""
        with torch.no_grad(), self._autocast():
            k, batch = len(next_views), reward.shape[0]
            next_obs = torch.cat(next_views) if k > 1 else next_views[0]
            next_action, next_log_prob = self.actor.action_log_prob(next_obs)
            q1, q2 = self.critic_target(next_obs, next_action)
        with torch.no_grad():
            soft_value = torch.min(q1, q2) - self.alpha * next_log_prob
            soft_value = soft_value.view(k, batch, 1).mean(0)
            return reward + (1.0 - done) * self.gamma * soft_value

    def critic_loss(self, views: list[torch.Tensor], action: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``0.5 * mean_m [MSE(Q_1(o_m, a), y) + MSE(Q_2(o_m, a), y)]`` (one forward over all views)."""
        m = len(views)
        obs = torch.cat(views) if m > 1 else views[0]
        with self._autocast():
            q1, q2 = self.critic(obs, action.repeat(m, 1))
        return self._q_loss(q1, q2, target, m)

    @staticmethod
    def _q_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor, m: int) -> torch.Tensor:
        y = target.repeat(m, 1)
        return 0.5 * (F.mse_loss(q1.float(), y) + F.mse_loss(q2.float(), y))

    def _check_finite(self, name: str, loss: torch.Tensor) -> float:
        value = float(loss.item())
        if not math.isfinite(value):
            raise NonFiniteLossError(name, value, self._n_updates, where=self._step_description())
        return value

    def _step_description(self) -> str:
        return f"gradient step {self._n_updates}, agent step {self.num_timesteps}"

    def _update_critic(self, views: TrainViews, data: Any) -> float:
        target = self.target_q(data.rewards, data.dones, views.next_obs)
        loss = self.critic_loss(views.obs, data.actions, target)
        value = self._check_finite("critic_loss", loss)
        self.critic.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic.optimizer.step()
        return value

    def _update_actor_and_alpha(self, obs: torch.Tensor) -> dict[str, float]:
        with torch.no_grad(), self._autocast():
            conv = self.critic.encoder.conv_features(obs)  # shared by actor and critic heads (detached)
            critic_features = self.critic.encoder.head(conv)
        with self._autocast():
            action, log_prob = self.actor.sample_from_features(self.actor.encoder.head(conv))
            q1, q2 = self.critic.q_from_features(critic_features, action)
        actor_loss = (self.alpha.detach() * log_prob - torch.min(q1, q2)).mean()
        actor_value = self._check_finite("actor_loss", actor_loss)
        self.actor.optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor.optimizer.step()
        self.critic.optimizer.zero_grad(set_to_none=True)  # drop the Q-head grads of the actor loss

        alpha_loss = (self.alpha * (-log_prob - self.target_entropy).detach()).mean()
        alpha_value = self._check_finite("alpha_loss", alpha_loss)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optimizer.step()
        return {"actor_loss": actor_value, "ent_coef_loss": alpha_value, "entropy": -float(log_prob.detach().mean())}

    def _autocast(self):
        """The forward-pass precision context (bf16 autocast or nothing); backward passes run outside it."""
        return autocast(self.resolved_precision, self.device)

    def _update_critic_and_aux_fused(self, views: TrainViews, data: Any) -> dict[str, float]:
        """``fused_encoder_step``: one encoder pass and one backward for the critic and auxiliary losses."""
        target = self.target_q(data.rewards, data.dones, views.next_obs)
        m = len(views.obs)
        obs = torch.cat(views.obs) if m > 1 else views.obs[0]
        with self._autocast():
            features = self.critic.encoder(obs)
            q1, q2 = self.critic.q_from_features(features, data.actions.repeat(m, 1))
        critic_loss = self._q_loss(q1, q2, target, m)
        batch = self._aux_batch(views, data, obs_features=features[: data.rewards.shape[0]])
        aux_loss, aux_logs = self.aux_objective.loss(batch)
        critic_value = self._check_finite("critic_loss", critic_loss)
        self._check_finite(f"aux/{self.aux} loss", aux_loss)
        self.critic.optimizer.zero_grad(set_to_none=True)
        self.aux_objective.optimizer.zero_grad(set_to_none=True)
        (critic_loss + self.aux_objective.weight * aux_loss).backward()
        self.critic.optimizer.step()
        self.aux_objective.step_after_backward()
        return {"critic_loss": critic_value, **{f"aux_{k}": v for k, v in aux_logs.items()}}

    def _update_targets(self) -> None:
        polyak_update(self.critic.q1, self.critic_target.q1, self.tau)
        polyak_update(self.critic.q2, self.critic_target.q2, self.tau)
        polyak_update(self.critic.encoder, self.critic_target.encoder, self.encoder_tau)
        if self.aux_objective is not None:
            self.aux_objective.after_target_update()

    def _update_aux(self, views: TrainViews, data: Any) -> dict[str, float]:
        batch = self._aux_batch(views, data)
        try:
            logs = self.aux_objective.update(batch)
        except FloatingPointError as err:  # raised before the objective's optimizer step
            raise NonFiniteLossError(
                f"aux/{self.aux} loss", math.nan, self._n_updates, where=f"{self._step_description()}: {err}"
            ) from err
        return logs

    def _aux_batch(self, views: TrainViews, data: Any, obs_features: torch.Tensor | None = None) -> Any:
        from curl_agents.objectives.base import AuxBatch

        return AuxBatch(
            obs=views.obs[0],
            obs_pos=views.obs_pos,
            next_obs=views.next_obs[0],
            action=data.actions,
            reward=data.rewards,
            done=data.dones,
            obs_features=obs_features,
        )

    # ------------------------------------------------------------------------------------------ train
    def train(self, gradient_steps: int, batch_size: int = 512) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])  # SB3 lr schedule, if any
        logs: dict[str, list[float]] = defaultdict(list)
        for _ in range(gradient_steps):
            step = self._cadence_step()
            self._gradient_step(
                batch_size,
                logs,
                update_actor=step % self.actor_update_freq == 0,
                update_target=step % self.target_update_interval == 0,
            )
        self._record_train_logs(logs)

    def _cadence_step(self) -> int:
        """The index the update cadences are taken modulo: gradient steps so far, over the whole run."""
        return self._n_updates

    def _gradient_step(
        self, batch_size: int, logs: dict[str, list[float]], update_actor: bool, update_target: bool
    ) -> None:
        """One gradient step (critic; actor and temperature; target EMA; aux), appending to ``logs``."""
        data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
        views = add_color_views(
            self.make_views(data.observations, data.next_observations), self.color_augment, self.aug_generator
        )
        fused = self.fused_encoder_step and self.aux_objective is not None
        if fused:
            for key, value in self._update_critic_and_aux_fused(views, data).items():
                logs[key].append(value)
        else:
            logs["critic_loss"].append(self._update_critic(views, data))
        if update_actor:
            for key, value in self._update_actor_and_alpha(views.obs[0]).items():
                logs[key].append(value)
        if update_target:
            self._update_targets()
        if self.aux_objective is not None and not fused:
            for key, value in self._update_aux(views, data).items():
                logs[key.replace("/", "_")].append(value)
        self._n_updates += 1

    def _record_train_logs(self, logs: dict[str, list[float]]) -> None:
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(self.alpha.item()))
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))

    # ------------------------------------------------------------------------------------------ save/load
    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """SB3's ``save`` plus the augmentation generator's state (restored by ``load``)."""
        state = self.aug_generator.get_state().numpy().copy()
        self._saved_aug_generator_state = {"device_type": self.aug_generator.device.type, "state": state}
        try:
            super().save(path, exclude=exclude, include=include)
        finally:
            del self._saved_aug_generator_state

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor", "critic", "critic_target", "aux_objective", "aug_generator"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer", "alpha_optimizer"]
        if self.aux_objective is not None:
            state_dicts += [
                "aux_objective",
                *(f"aux_objective.{name}" for name in self.aux_objective.optimizer_names()),
            ]
        return state_dicts, ["log_alpha"]


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _default_replay_class() -> type[ReplayBuffer]:
    from curl_agents.replay import FrameReplayBuffer

    return FrameReplayBuffer
