"""State SAC: stable-baselines3's SAC with the settings of the CURL paper's state-based baseline.

The CURL paper (Srinivas et al. 2020, appendix table) and SAC-AE (Yarats et al. 2019) train their
state-SAC reference with: two hidden layers of 1024 units for the actor and both critics, Adam with
learning rate 1e-3 and betas (0.9, 0.999), an initial temperature 0.1 learned with its own Adam
(lr 1e-4, betas (0.5, 0.999)) towards a target entropy of -|A|, critic tau 0.01, discount 0.99,
1000 random initial agent steps and a 100K-transition replay.

Update cadence (:meth:`StateSAC.train`): the critic, the actor and the temperature every gradient
step, the target EMA every ``target_update_interval`` (2) gradient steps counted over the whole run
(``_n_updates``, 0 at the first update). This is the state-SAC code of the same authors,
``denisyarats/pytorch_sac`` @ ``81c5b53`` ``config/agent/sac.yaml``: ``actor_update_frequency: 1``
(L17), ``critic_target_update_frequency: 2`` (L21). SB3's own ``SAC.train`` tests the loop index of
one ``train()`` call, which is always 0 when ``learn`` calls ``train(1, batch)``, so it would move the
target every step.

A non-finite loss raises :class:`ssl_shared.errors.NonFiniteLossError` naming the loss, the gradient
step and the agent step, before the optimizer step that would spread it.

Differences from the CURL code that remain because this *is* SB3's SAC:

* the actor (and the temperature) are updated every gradient step (SB3's SAC has no policy delay;
  as in ``pytorch_sac`` above);
* the temperature loss is written on log(alpha) (SB3) instead of alpha (CURL code);
* the actor clips its log-std to [-20, 2] (SB3) instead of squashing it into [-10, 2].

Batch size: 512 is the paper's (the author's statement, CURL issue #15); the default here is 128,
the CURL repository's shipped command, because the 1024x2 MLP at batch 512 is ~4x the CPU time.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from curl_agents.algorithms.run_names import RunsNamedAfterClass
from ssl_shared.errors import NonFiniteLossError


class StateSAC(RunsNamedAfterClass, SAC):
    """SB3 SAC with the CURL paper's state-SAC settings as defaults (cited in the signature), a
    temperature Adam of its own (lr 1e-4, betas (0.5, 0.999), not on the lr schedule) and the target
    cadence counted over the whole run (see the module docstring)."""

    policy_defaults: ClassVar[Mapping[str, Any]] = {"net_arch": [1024, 1024]}  # CURL appendix: hidden 1024, 2 layers
    task_learning_rates: ClassVar[Mapping[str, float]] = {}  # CURL appendix: state SAC lr 1e-3 on every task

    def __init__(
        self,
        policy: str | type,
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 1e-3,  # CURL appendix: actor/critic lr 1e-3
        buffer_size: int = 100_000,  # CURL appendix: replay capacity 100000
        learning_starts: int = 1000,  # CURL train.py init_steps 1000 (agent steps)
        batch_size: int = 128,  # CURL repo command (run.sh); the paper's final runs used 512 (issue #15)
        tau: float = 0.01,  # CURL appendix: Q-function EMA 0.01
        gamma: float = 0.99,  # CURL appendix: discount 0.99
        ent_coef: str | float = "auto_0.1",  # CURL appendix: initial temperature 0.1, learned
        target_update_interval: int = 2,  # CURL train.py critic_target_update_freq 2
        alpha_lr: float = 1e-4,  # CURL appendix: temperature Adam lr 1e-4
        alpha_betas: tuple[float, float] = (0.5, 0.999),  # CURL appendix: temperature Adam beta1 0.5
        policy_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.alpha_lr = alpha_lr
        self.alpha_betas = tuple(alpha_betas)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            policy_kwargs={**copy.deepcopy(dict(self.policy_defaults)), **(policy_kwargs or {})},
            **kwargs,
        )

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.log_ent_coef is not None:
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.alpha_lr, betas=self.alpha_betas)

    def _update_learning_rate(self, optimizers: list[torch.optim.Optimizer] | torch.optim.Optimizer) -> None:
        # SB3 applies the actor/critic schedule to every optimizer it is given; keep alpha's lr fixed.
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        super()._update_learning_rate([o for o in optimizers if o is not self.ent_coef_optimizer])

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SB3's SAC gradient step (same losses, same order), with the target cadence on ``_n_updates``."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        logs: dict[str, list[float]] = defaultdict(list)
        for _ in range(gradient_steps):
            self._gradient_step(batch_size, logs)
            if self._n_updates % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))

    def _gradient_step(self, batch_size: int, logs: dict[str, list[float]]) -> None:
        """Temperature, critic and actor updates on one batch (SB3 ``SAC.train``'s loop body)."""
        data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
        discounts = data.discounts if data.discounts is not None else self.gamma
        if self.use_sde:
            self.actor.reset_noise()
        actions_pi, log_prob = self.actor.action_log_prob(data.observations)
        log_prob = log_prob.reshape(-1, 1)

        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            ent_coef = torch.exp(self.log_ent_coef.detach())
            # L(log alpha) = -mean[log alpha * (log pi + H_target)]  (SB3's form, on log alpha)
            ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
            logs["ent_coef_loss"].append(self._check_finite("ent_coef_loss", ent_coef_loss))
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss.backward()
            self.ent_coef_optimizer.step()
        else:
            ent_coef = self.ent_coef_tensor
        logs["ent_coef"].append(ent_coef.item())

        with torch.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
            next_q = torch.cat(self.critic_target(data.next_observations, next_actions), dim=1)
            next_q = torch.min(next_q, dim=1, keepdim=True).values - ent_coef * next_log_prob.reshape(-1, 1)
            target_q = data.rewards + (1 - data.dones) * discounts * next_q
        current_q = self.critic(data.observations, data.actions)
        critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
        logs["critic_loss"].append(self._check_finite("critic_loss", critic_loss))
        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        self.critic.optimizer.step()

        q_pi = torch.cat(self.critic(data.observations, actions_pi), dim=1)
        actor_loss = (ent_coef * log_prob - torch.min(q_pi, dim=1, keepdim=True).values).mean()
        logs["actor_loss"].append(self._check_finite("actor_loss", actor_loss))
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()

    def _check_finite(self, name: str, loss: torch.Tensor) -> float:
        value = float(loss.item())
        if not np.isfinite(value):
            where = f"gradient step {self._n_updates}, agent step {self.num_timesteps}"
            raise NonFiniteLossError(name, value, self._n_updates, where=where)
        return value


def state_sac(env: GymEnv | str, **overrides: Any) -> StateSAC:
    """``StateSAC("MlpPolicy", env, **overrides)``: SB3 SAC configured as the CURL paper's state-SAC baseline."""
    return StateSAC("MlpPolicy", env, **overrides)
