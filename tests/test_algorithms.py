"""Behaviour of the SB3-native pixel SAC algorithms (CURL, RAD, DrQ, pixel SAC) and the state-SAC factory.

Tiny configurations on a fake frame-stacked pixel env (24 px, crop 20, 2 conv layers of 4 filters,
feature dim 8, hidden 16, batch 8); every check is against a formula written out here.
"""

from __future__ import annotations

import base64
import io
import json
import math
import zipfile
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

from curl_agents.algorithms import ALGORITHMS, CURL, RAD, DrQ, PixelSAC, state_sac
from ssl_shared.errors import NonFiniteLossError

POLICY_KWARGS = {"feature_dim": 8, "hidden_dim": 16, "num_filters": 4, "num_layers": 2}
#: make_model arguments per algorithm: crop algorithms render 24 and crop 20, the others render the input size
TINY_KWARGS = {
    "curl": {},
    "rad": {},
    "drq": {"size": 24, "image_size": 24},
    "sac_ae": {"size": 20, "image_size": 20},
    "pixel_sac": {"size": 20, "image_size": 20},
}


class FakePixelEnv(gym.Env):
    """Random frames stacked like the DMC env (first frame repeated at reset); time limit = truncation."""

    def __init__(self, size: int = 24, action_dim: int = 2, episode_length: int = 10, seed: int = 0) -> None:
        self.observation_space = spaces.Box(0, 255, (9, size, size), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self.size, self.episode_length = size, episode_length
        self.rng = np.random.default_rng(seed)

    def _frame(self) -> np.ndarray:
        return self.rng.integers(0, 256, (3, self.size, self.size), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        first = self._frame()
        self.frames = [first, first, first]
        return np.concatenate(self.frames), {}

    def step(self, action):
        self.t += 1
        self.frames = [*self.frames[1:], self._frame()]
        reward = float(-np.sum(np.square(action)))
        return np.concatenate(self.frames), reward, False, self.t >= self.episode_length, {}


class FakeStateEnv(gym.Env):
    """A 3-d random state, 2-d actions, 10-step episodes (for state SAC)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.rng = np.random.default_rng(0)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self.rng.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        return self.rng.uniform(-1, 1, 3).astype(np.float32), float(-np.sum(np.square(action))), False, self.t >= 10, {}


def make_model(cls=CURL, size: int = 24, image_size: int = 20, learn: int = 0, **kwargs):
    kwargs.setdefault("policy_kwargs", dict(POLICY_KWARGS))
    model = cls(
        "CnnPolicy",
        FakePixelEnv(size=size),
        batch_size=8,
        learning_starts=10,
        buffer_size=200,
        seed=0,
        image_size=image_size,
        **kwargs,
    )
    if learn:
        model.learn(learn)
    return model


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def batch_views(model, batch_size: int = 8):
    data = model.replay_buffer.sample(batch_size)
    return data, model.make_views(data.observations, data.next_observations)


# ------------------------------------------------------------------------------------ encoder sharing
def test_actor_convs_are_the_critic_convs_and_target_is_a_copy():
    model = make_model()
    for a, c, t in zip(model.actor.encoder.convs, model.critic.encoder.convs, model.critic_target.encoder.convs):
        assert a.weight is c.weight and a.bias is c.bias
        assert t.weight is not c.weight and torch.equal(t.weight, c.weight)
    assert model.actor.encoder.fc.weight is not model.critic.encoder.fc.weight
    # the auxiliary objective trains the critic's encoder against the critic-target (key) encoder
    assert model.aux_objective.encoder is model.critic.encoder
    assert model.aux_objective.target_encoder is model.critic_target.encoder
    conv_ids = {id(p) for p in model.critic.encoder.convs.parameters()}
    actor_opt_ids = {id(p) for g in model.actor.optimizer.param_groups for p in g["params"]}
    critic_opt_ids = {id(p) for g in model.critic.optimizer.param_groups for p in g["params"]}
    assert conv_ids <= critic_opt_ids and not conv_ids & actor_opt_ids


def test_encoder_trained_by_critic_loss_not_by_actor_loss():
    model = make_model(learn=20)
    data, views = batch_views(model)
    convs = model.critic.encoder.convs
    # critic loss reaches the convolutions
    model.critic.optimizer.zero_grad()
    target = model.target_q(data.rewards, data.dones, views.next_obs)
    model.critic_loss(views.obs, data.actions, target).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in convs.parameters())
    # the actor loss does not (gradients) ...
    model.critic.optimizer.zero_grad(set_to_none=True)
    action, log_prob = model.actor.action_log_prob(views.obs[0])
    q1, q2 = model.critic(views.obs[0], action, detach_encoder=True)
    (model.alpha.detach() * log_prob - torch.min(q1, q2)).mean().backward()
    assert all(p.grad is None for p in convs.parameters())
    assert model.actor.trunk[0].weight.grad is not None
    # ... and an actor update leaves convs and critic encoder untouched while moving the actor
    before_conv, before_critic_fc = snapshot(convs), snapshot(model.critic.encoder.fc)
    before_actor = snapshot(model.actor.trunk)
    model._update_actor_and_alpha(views.obs[0])
    assert all(torch.equal(v, convs.state_dict()[k]) for k, v in before_conv.items())
    assert all(torch.equal(v, model.critic.encoder.fc.state_dict()[k]) for k, v in before_critic_fc.items())
    assert any(not torch.equal(v, model.actor.trunk.state_dict()[k]) for k, v in before_actor.items())


@pytest.mark.parametrize(
    ("name", "encoder_tau", "q_tau"),
    [
        ("curl", 0.05, 0.01),  # CURL train.py encoder_tau 0.05, critic_tau 0.01
        ("drq", 0.01, 0.01),  # DrQ drq.py: the whole critic, encoder included, with critic_tau 0.01
        ("sac_ae", 0.05, 0.01),  # SAC-AE train.py --encoder_tau 0.05, --critic_tau 0.01
    ],
)
def test_target_update_moves_by_tau(name, encoder_tau, q_tau):
    model = make_model(ALGORITHMS[name], **TINY_KWARGS[name], learn=20)
    online_enc, target_enc = snapshot(model.critic.encoder), snapshot(model.critic_target.encoder)
    online_q, target_q = snapshot(model.critic.q1), snapshot(model.critic_target.q1)
    model._update_targets()
    for k, t in target_enc.items():
        expected = (1 - encoder_tau) * t + encoder_tau * online_enc[k]
        torch.testing.assert_close(model.critic_target.encoder.state_dict()[k], expected)
    for k, t in target_q.items():
        expected = (1 - q_tau) * t + q_tau * online_q[k]
        torch.testing.assert_close(model.critic_target.q1.state_dict()[k], expected)


# ------------------------------------------------------------------------------------ targets
def _soft_value_by_hand(model, next_obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """min_i Q_targ_i(o', a') - alpha * log pi(a'|o'), a' = tanh(mu + std * noise), written out."""
    actor = model.actor
    h = actor.encoder(next_obs)
    mu, raw = actor.trunk(h).chunk(2, dim=-1)
    log_std = -10.0 + 0.5 * (2.0 - (-10.0)) * (torch.tanh(raw) + 1)
    u = mu + log_std.exp() * noise
    action = torch.tanh(u)
    normal = torch.distributions.Normal(mu, log_std.exp())
    log_prob = (normal.log_prob(u) - torch.log(1 - action.pow(2) + 1e-12)).sum(-1, keepdim=True)
    z = model.critic_target.encoder(next_obs)
    x = torch.cat([z, action], dim=-1)
    q = torch.min(model.critic_target.q1(x), model.critic_target.q2(x))
    return q - model.log_alpha.exp() * log_prob


def test_critic_target_by_hand():
    model = make_model(learn=20)
    data, views = batch_views(model, batch_size=4)
    reward = torch.tensor([[1.0], [-0.5], [0.25], [2.0]])
    done = torch.tensor([[0.0], [1.0], [0.0], [0.0]])
    torch.manual_seed(7)
    got = model.target_q(reward, done, views.next_obs)
    torch.manual_seed(7)
    noise = torch.randn(4, 2)
    with torch.no_grad():
        value = _soft_value_by_hand(model, views.next_obs[0], noise)
    expected = reward + 0.99 * (1 - done) * value
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert got[1].item() == pytest.approx(-0.5)  # termination: no bootstrap


def _reference_offsets(seed: int, n_draws: int, batch: int, high: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n_draws`` (top, left) pairs, each ``batch`` integers uniform in ``0..high``, from a generator
    seeded here: the documented order of draws (top, then left) of every crop or shift."""
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randint(0, high + 1, (batch,), generator=gen), torch.randint(0, high + 1, (batch,), generator=gen))
        for _ in range(n_draws)
    ]


def _shift_by_hand(x: np.ndarray, top: int, left: int, pad: int = 4) -> np.ndarray:
    """DrQ's shift of one (C, H, W) image: edge-replicate pad by ``pad``, cut H x W at (top, left)."""
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    return padded[:, top : top + x.shape[1], left : left + x.shape[2]]


def test_drq_views_are_two_independent_shifts_of_obs_then_of_next_obs():
    model = make_model(DrQ, size=24, image_size=24, learn=20)
    assert model.k_target == 2 and model.m_q == 2
    data = model.replay_buffer.sample(4)
    model.aug_generator.manual_seed(3)
    views = model.make_views(data.observations, data.next_observations)
    draws = _reference_offsets(3, 4, batch=4, high=8)  # aug_1(o), aug_2(o), aug_1(o'), aug_2(o'); offsets 0..2*pad
    sources = [data.observations] * 2 + [data.next_observations] * 2
    for got, (top, left), source in zip([*views.obs, *views.next_obs], draws, sources):
        for i in range(4):
            expected = _shift_by_hand(source[i].numpy(), int(top[i]), int(left[i]))
            np.testing.assert_array_equal(got[i].numpy(), expected.astype(np.float32))
    assert torch.equal(views.obs_pos, views.obs[1])  # the aux positive is aug_2(o)
    assert views.obs[0].dtype == torch.float32


def test_rad_draws_one_crop_of_obs_and_one_of_next_obs_per_step():
    """RAD (sample_rad) crops obs and next_obs; no third (contrastive positive) crop is drawn."""
    model = make_model(RAD, learn=20)
    data = model.replay_buffer.sample(6)
    model.aug_generator.manual_seed(9)
    views = model.make_views(data.observations, data.next_observations)
    (top, left), (next_top, next_left) = _reference_offsets(9, 2, batch=6, high=4)  # 24 -> 20: offsets 0..4
    for i in range(6):
        t, lft, nt, nl = int(top[i]), int(left[i]), int(next_top[i]), int(next_left[i])
        assert torch.equal(views.obs[0][i], data.observations[i, :, t : t + 20, lft : lft + 20].float())
        assert torch.equal(views.next_obs[0][i], data.next_observations[i, :, nt : nt + 20, nl : nl + 20].float())
    reference = torch.Generator().manual_seed(9)
    torch.randint(0, 5, (4 * 6,), generator=reference)  # the 4 x 6 offsets above, nothing more
    assert torch.equal(model.aug_generator.get_state(), reference.get_state())


# ------------------------------------------------------------------------------------ losses by hand
class _ConstantImageNets:
    """Stand-ins with known outputs, a function of each image's mean pixel value m:
    actor: a' = 0, log pi(a'|o) = -m / 100;  Q_1 = m / 10, Q_2 = m / 10 - 1 (online), Q_2 = m / 10 + 1 (target)."""

    @staticmethod
    def mean(obs: torch.Tensor) -> torch.Tensor:
        return obs.float().mean(dim=(1, 2, 3)).unsqueeze(1)

    def action_log_prob(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(obs.shape[0], 2), -self.mean(obs) / 100

    def target(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(obs) / 10, self.mean(obs) / 10 + 1

    def online(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(obs) / 10, self.mean(obs) / 10 - 1


def _constant_views(values: list[list[float]], size: int) -> list[torch.Tensor]:
    """views[k][b] is a (9, size, size) image of constant value values[k][b]."""
    return [torch.tensor(row).view(-1, 1, 1, 1).expand(len(row), 9, size, size).clone() for row in values]


@pytest.mark.parametrize("name", ["drq", "pixel_sac"])
def test_critic_target_by_hand_with_mock_networks(name):
    model = make_model(ALGORITHMS[name], **TINY_KWARGS[name])
    nets = _ConstantImageNets()
    model.actor = SimpleNamespace(action_log_prob=nets.action_log_prob)
    model.critic_target = nets.target
    reward, done = torch.tensor([[1.0], [-1.0]]), torch.tensor([[0.0], [1.0]])
    # alpha = 0.1 (init temperature); soft value = min(Q_1, Q_2) - alpha * log pi = m/10 + 0.1 m/100 = 0.101 m
    if name == "drq":  # K = 2 views of next_obs, means m[k][b] = [[10, 20], [30, 40]]
        next_views = _constant_views([[10.0, 20.0], [30.0, 40.0]], 24)
        expected = [[1 + 0.99 * 0.101 * (10 + 30) / 2], [-1.0]]  # b=0: 2.9998; b=1: done, no bootstrap
    else:  # K = 1
        next_views = _constant_views([[10.0, 20.0]], 20)
        expected = [[1 + 0.99 * 0.101 * 10], [-1.0]]  # 1.9999
    got = model.target_q(reward, done, next_views)
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["drq", "curl"])
def test_critic_loss_by_hand_with_mock_networks(name):
    model = make_model(ALGORITHMS[name], **TINY_KWARGS[name])
    model.critic = _ConstantImageNets().online
    target = torch.tensor([[3.0], [-1.0]])
    action = torch.zeros(2, 2)
    size = model.image_size
    if name == "drq":  # M = 2 views, means [[10, 20], [30, 40]]: Q_1 = [[1, 2], [3, 4]], Q_2 = [[0, 1], [2, 3]]
        views = _constant_views([[10.0, 20.0], [30.0, 40.0]], size)
        # Q_1 errors^2: (1-3)^2, (2+1)^2, (3-3)^2, (4+1)^2 -> mean 38/4; Q_2: 9, 4, 1, 16 -> mean 30/4
        expected = 0.5 * (38 / 4 + 30 / 4)  # 8.5
    else:  # M = 1: Q_1 = [1, 2] -> (4 + 9) / 2; Q_2 = [0, 1] -> (9 + 4) / 2
        views = _constant_views([[10.0, 20.0]], size)
        expected = 0.5 * (13 / 2 + 13 / 2)  # 6.5
    loss = model.critic_loss(views, action, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


#: Temperature Adam of each algorithm and the form of its loss, from the reference code / papers:
#: CURL appendix and train.py (lr 1e-4, beta1 0.5; loss on alpha), SAC-AE train.py (the same), DrQ drq.py
#: L197 (the global lr 1e-3, Adam's default betas; loss on alpha), state SAC: SB3's loss on log alpha.
TEMPERATURE = {
    "curl": (1e-4, (0.5, 0.999), "alpha"),
    "rad": (1e-4, (0.5, 0.999), "alpha"),
    "pixel_sac": (1e-4, (0.5, 0.999), "alpha"),
    "sac_ae": (1e-4, (0.5, 0.999), "alpha"),
    "drq": (1e-3, (0.9, 0.999), "alpha"),
    "state_sac": (1e-4, (0.5, 0.999), "log_alpha"),
}


def _adam_by_hand(log_alpha: float, grads_of: list, lr: float, betas: tuple[float, float]) -> float:
    """Adam (Kingma & Ba 2015, eps 1e-8) on the scalar log alpha; grads_of[t](log_alpha) is step t's gradient."""
    b1, b2, eps = betas[0], betas[1], 1e-8
    m = v = 0.0
    for t, grad_of in enumerate(grads_of, start=1):
        g = grad_of(log_alpha)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        log_alpha -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    return log_alpha


@pytest.mark.parametrize("name", list(TEMPERATURE))
def test_temperature_after_two_steps_is_adam_on_the_documented_loss(name):
    lr, betas, form = TEMPERATURE[name]
    log_probs = [torch.tensor([[-1.0], [-3.0]]), torch.tensor([[2.0], [0.5]])]
    target_entropy = -2.0  # -|A|
    if form == "alpha":
        # L = mean[alpha * (-log pi - H)]  ->  dL/d log alpha = alpha * mean(-log pi - H)
        grads_of = [lambda la, lp=lp: math.exp(la) * float((-lp - target_entropy).mean()) for lp in log_probs]
    else:
        # L = -mean[log alpha * (log pi + H)]  ->  dL/d log alpha = -mean(log pi + H)
        grads_of = [lambda la, lp=lp: -float((lp + target_entropy).mean()) for lp in log_probs]
    expected = _adam_by_hand(math.log(0.1), grads_of, lr, betas)

    if name == "state_sac":
        model = state_sac(
            FakeStateEnv(), batch_size=2, learning_starts=10, buffer_size=100, seed=0, policy_kwargs={"net_arch": [8]}
        )
        model.learn(10)
        real = model.actor.action_log_prob
        queue = iter(log_probs)

        def stub(obs):  # the log pi the temperature sees (the grad-enabled call on obs), else the real one
            action, log_prob = real(obs)
            return (action, next(queue).view(-1) + 0 * log_prob) if torch.is_grad_enabled() else (action, log_prob)

        model.actor.action_log_prob = stub
        for _ in range(2):
            model.train(1, 2)
        got = model.log_ent_coef.item()
    else:
        model = make_model(ALGORITHMS[name], **TINY_KWARGS[name], learn=10)  # fills the replay, no update yet
        obs = batch_views(model, batch_size=2)[1].obs[0]
        real = model.actor.sample_from_features
        queue = iter(log_probs)

        def stub(features):
            action, log_prob = real(features)
            return action, next(queue) + 0 * log_prob

        model.actor.sample_from_features = stub
        assert model.log_alpha.item() == pytest.approx(math.log(0.1))
        for _ in range(2):
            model._update_actor_and_alpha(obs)
        got = model.log_alpha.item()
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert got != pytest.approx(math.log(0.1), abs=lr / 2)  # it moved


def test_curl_crops_use_every_offset_and_acting_uses_center_crop():
    model = make_model()
    rows = torch.arange(24, dtype=torch.uint8).view(1, 1, 24, 1).expand(256, 9, 24, 24).clone()
    views = model.make_views(rows, rows)
    tops = views.obs[0][:, 0, 0, 0].long()
    assert set(tops.tolist()) == {0, 1, 2, 3, 4}  # 24 -> 20: offsets 0..4 inclusive (CURL code: 0..3)
    obs = FakePixelEnv().reset(seed=1)[0]
    action, _ = model.predict(obs, deterministic=True)
    with torch.no_grad():
        view = torch.as_tensor(obs)[None, :, 2:22, 2:22]
        expected = model.actor(view, deterministic=True).numpy()[0]
    np.testing.assert_allclose(action, expected, rtol=1e-6)


def test_curl_latent_dim_takes_effect_and_bad_names_raise():
    model = make_model(aux_kwargs={"latent_dim": 6})
    assert tuple(model.aux_objective.critic.W.shape) == (6, 6)
    with pytest.raises(ValueError, match="unknown auxiliary objective"):
        make_model(aux="nope")
    with pytest.raises(ValueError, match="RAD has no auxiliary"):
        make_model(RAD, aux="curl")
    with pytest.raises(ValueError, match="image_size"):
        make_model(DrQ, size=24, image_size=20)


# ------------------------------------------------------------------------------------ SB3 integration
def _all_state(model) -> dict[str, object]:
    state = {f"policy.{k}": v for k, v in model.policy.state_dict().items()}
    state.update({f"aux.{k}": v for k, v in model.aux_objective.state_dict().items()})
    for name in ("actor.optimizer", "critic.optimizer", "alpha_optimizer", "aux_objective.optimizer"):
        obj = model
        for part in name.split("."):
            obj = getattr(obj, part)
        for pid, st in obj.state_dict()["state"].items():
            for k, v in st.items():
                state[f"{name}.{pid}.{k}"] = v
    state["log_alpha"] = model.log_alpha.detach()
    return state


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = make_model(learn=30)
    model.save(tmp_path / "m.zip")
    loaded = CURL.load(tmp_path / "m.zip", env=FakePixelEnv())
    a, b = _all_state(model), _all_state(loaded)
    assert a.keys() == b.keys() and len(a) > 20
    for k in a:
        assert torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])), k
    assert loaded.actor.encoder.convs[0].weight is loaded.critic.encoder.convs[0].weight  # tie survives load
    obs = FakePixelEnv().reset(seed=5)[0]
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    torch.manual_seed(0)
    stochastic = model.predict(obs)[0]
    torch.manual_seed(0)
    np.testing.assert_array_equal(stochastic, loaded.predict(obs)[0])
    # training continues identically from the loaded copy (same global RNG, same replay; load() restores
    # the augmentation generator)
    loaded.replay_buffer = model.replay_buffer
    loaded.set_logger(model.logger)
    for m in (model, loaded):
        torch.manual_seed(1)
        np.random.seed(1)
        m.train(2, 8)
    for k, v in model.policy.state_dict().items():
        assert torch.equal(v, loaded.policy.state_dict()[k]), k


def test_save_load_restores_the_second_encoder_optimizer_of_official_double_step(tmp_path):
    model = make_model(learn=30, aux_kwargs={"official_double_step": True})
    saved = model.aux_objective.encoder_optimizer.state_dict()["state"]
    assert saved and all(int(st["step"]) == model._n_updates for st in saved.values())
    model.save(tmp_path / "m.zip")
    restored = CURL.load(tmp_path / "m.zip", env=FakePixelEnv()).aux_objective.encoder_optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys()
    for pid, st in saved.items():
        for key, value in st.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(restored[pid][key])), (pid, key)


#: A CURL model saved by curl_agents at commit 09100e6, whose objectives package was ``curl_agents.aux``:
#: 9x16x16 frame stacks, image_size 12, policy_kwargs feature_dim 4 / hidden_dim 8 / num_filters 2 /
#: num_layers 2, batch_size 4, learning_starts 8, seed 0, learn(12): 4 gradient steps.
PRE_RENAME_MODEL = Path(__file__).parent / "fixtures" / "curl_saved_with_aux_package.zip"
#: What that code's ``predict(obs, deterministic=True)`` returned for ``obs`` below.
PRE_RENAME_ACTION = [-0.2927732467651367, -0.23437106609344482]


def test_model_saved_with_the_former_objectives_package_loads():
    """SB3 pickles ``policy_class`` and ``replay_buffer_class`` (curl_agents.policies, curl_agents.replay);
    the objective is rebuilt from its name and loaded from ``aux_objective.pth`` (tensors only), so a zip
    saved when the objectives lived in ``curl_agents.aux`` loads without an alias for that module."""
    from curl_agents.objectives.curl import CurlObjective

    loaded = CURL.load(PRE_RENAME_MODEL, device="cpu")
    assert isinstance(loaded.aux_objective, CurlObjective) and loaded._n_updates == 4
    with zipfile.ZipFile(PRE_RENAME_MODEL) as archive:
        for part in ("policy", "aux_objective"):
            saved = torch.load(io.BytesIO(archive.read(f"{part}.pth")), map_location="cpu", weights_only=True)
            restored = getattr(loaded, part).state_dict()
            assert saved.keys() == restored.keys() and saved, part
            for key, value in saved.items():
                assert torch.equal(value, restored[key]), (part, key)
    obs = np.random.default_rng(0).integers(0, 256, (9, 16, 16), dtype=np.uint8)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], PRE_RENAME_ACTION, rtol=0, atol=1e-6)


def _pickled_parts(path: Path) -> dict[str, bytes]:
    """Every pickle in an SB3 zip: the cloudpickled entries of ``data`` and the ``.pth`` members (torch
    stores their ``data.pkl`` uncompressed)."""
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
        parts = {name: archive.read(name) for name in archive.namelist() if name.endswith(".pth")}
    for key, value in data.items():
        if isinstance(value, dict) and ":serialized:" in value:
            parts[key] = base64.b64decode(value[":serialized:"])
    return parts


@pytest.mark.parametrize("aux", ["curl", "moco", "reconstruction"])
def test_saved_models_do_not_pickle_the_objectives_module(tmp_path, aux):
    model = make_model(aux=aux, learn=12)
    model.save(tmp_path / "m.zip")
    parts = _pickled_parts(tmp_path / "m.zip")
    assert b"curl_agents.policies" in parts["policy_class"]  # the scan reads module paths where SB3 puts them
    assert not [name for name, raw in parts.items() if b"curl_agents.objectives" in raw]


#: SB3's algorithms name their TensorBoard runs after themselves (SAC: "SAC_1", "SAC_2", ...).
TB_RUN_NAMES = {
    "curl": "CURL",
    "rad": "RAD",
    "drq": "DrQ",
    "sac_ae": "SacAE",
    "pixel_sac": "PixelSAC",
    "state_sac": "StateSAC",
}


@pytest.mark.parametrize("name", list(TB_RUN_NAMES))
def test_tensorboard_run_folder_is_named_after_the_algorithm(tmp_path, name):
    if name == "state_sac":
        model = state_sac(
            FakeStateEnv(), learning_starts=10, seed=0, policy_kwargs={"net_arch": [8]}, tensorboard_log=str(tmp_path)
        )
    else:
        model = make_model(ALGORITHMS[name], **TINY_KWARGS[name], tensorboard_log=str(tmp_path))
    model.learn(2)
    model.learn(2)  # a second run of the same model: the next number
    model.learn(2, tb_log_name="mine")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{TB_RUN_NAMES[name]}_1", f"{TB_RUN_NAMES[name]}_2", "mine_1"]
    )
    assert list((tmp_path / f"{TB_RUN_NAMES[name]}_1").glob("events.out.tfevents*"))


@pytest.mark.parametrize("cls", [PixelSAC, RAD])
def test_sb3_callbacks_evaluate_policy_and_tensorboard(tmp_path, cls):
    model = make_model(cls, tensorboard_log=str(tmp_path / "tb"))
    eval_cb = EvalCallback(
        Monitor(FakePixelEnv(seed=1)), n_eval_episodes=2, eval_freq=15, log_path=str(tmp_path / "eval"), verbose=0
    )
    ckpt_cb = CheckpointCallback(save_freq=20, save_path=str(tmp_path / "ckpt"), name_prefix="m")
    model.learn(30, callback=[eval_cb, ckpt_cb])
    assert len(eval_cb.evaluations_results) == 2 and np.isfinite(eval_cb.last_mean_reward)
    assert (tmp_path / "ckpt" / "m_20_steps.zip").exists()
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))
    mean, std = evaluate_policy(model, Monitor(FakePixelEnv(seed=2)), n_eval_episodes=2)
    assert math.isfinite(mean) and std >= 0
    assert model._n_updates == 30 - 10


# ------------------------------------------------------------------------------------ update cadence
def _counting(fn, counts: dict[str, int], key: str):
    def wrapped(*args, **kwargs):
        counts[key] += 1
        return fn(*args, **kwargs)

    return wrapped


def _instrument(model, counts: dict[str, int]) -> None:
    """Count optimizer steps of the actor, the temperature and the critic, and the train() calls after
    which the critic target's parameters changed (a target EMA happened)."""
    temperature = model.ent_coef_optimizer if hasattr(model, "ent_coef_optimizer") else model.alpha_optimizer
    for key, optimizer in (
        ("actor", model.actor.optimizer),
        ("temperature", temperature),
        ("critic", model.critic.optimizer),
    ):
        optimizer.step = _counting(optimizer.step, counts, key)
    train = model.train

    def counted_train(gradient_steps, batch_size):
        assert gradient_steps == 1  # learn() with train_freq 1, gradient_steps 1
        before = [p.detach().clone() for p in model.critic_target.parameters()]
        train(gradient_steps, batch_size)
        after = list(model.critic_target.parameters())
        counts["target"] += any(not torch.equal(a, b) for a, b in zip(after, before))
        counts["train_calls"] += 1

    model.train = counted_train


#: Updates in 10 gradient steps (gradient steps 0..9). Pixel algorithms (CURL train.py, DrQ config.yaml,
#: SAC-AE train.py): actor, temperature and target every 2nd step, i.e. at 0, 2, 4, 6, 8. State SAC
#: (pytorch_sac config/agent/sac.yaml): actor and temperature every step, target every 2nd.
CADENCE = {
    "curl": {"critic": 10, "actor": 5, "temperature": 5, "target": 5},
    "rad": {"critic": 10, "actor": 5, "temperature": 5, "target": 5},
    "drq": {"critic": 10, "actor": 5, "temperature": 5, "target": 5},
    "sac_ae": {"critic": 10, "actor": 5, "temperature": 5, "target": 5},
    "pixel_sac": {"critic": 10, "actor": 5, "temperature": 5, "target": 5},
    "state_sac": {"critic": 10, "actor": 10, "temperature": 10, "target": 5},
}


@pytest.mark.parametrize("name", list(CADENCE))
def test_update_cadence_over_ten_gradient_steps_as_learn_makes_them(name):
    if name == "state_sac":
        model = state_sac(
            FakeStateEnv(), batch_size=8, learning_starts=10, buffer_size=100, seed=0, policy_kwargs={"net_arch": [8]}
        )
    else:
        extra = {"initial_updates": 0} if name == "sac_ae" else {}  # the first-call burst: next test
        model = make_model(ALGORITHMS[name], **TINY_KWARGS[name], **extra)
    counts = dict.fromkeys(("critic", "actor", "temperature", "target", "train_calls"), 0)
    _instrument(model, counts)
    model.learn(20)  # updates after agent steps 11..20
    assert counts.pop("train_calls") == 10
    assert counts == CADENCE[name]


def test_sac_ae_first_training_call_runs_learning_starts_updates_then_the_cadence():
    """SAC-AE train.py L224: at the first update step, init_steps updates, all at the same (even) step."""
    model = make_model(ALGORITHMS["sac_ae"], **TINY_KWARGS["sac_ae"])  # learning_starts 10
    counts = dict.fromkeys(("critic", "actor", "temperature", "target", "train_calls"), 0)
    _instrument(model, counts)
    model.learn(11)  # one train() call
    assert counts == {"critic": 10, "actor": 10, "temperature": 10, "target": 1, "train_calls": 1}
    model.learn(9, reset_num_timesteps=False)  # 9 more calls: cadence steps 1..9, actor at 2, 4, 6, 8
    assert counts == {"critic": 19, "actor": 14, "temperature": 14, "target": 5, "train_calls": 10}


# ------------------------------------------------------------------------------------ augmentation stream
def test_crop_stream_continues_across_save_and_load(tmp_path, monkeypatch):
    """Crops of a saved-and-loaded CURL equal the uninterrupted stream: a generator seeded, independently
    of the code, with child 0 of numpy SeedSequence(seed) (63 bits), three crops (top, left) per step."""
    import curl_agents.algorithms.curl as curl_module
    from ssl_shared.augment import crop

    recorded: list[torch.Tensor] = []

    def recording_crop(x, size, *, generator=None):
        out, params = crop.random_crop(x, size, generator=generator, return_params=True)
        recorded.extend([params["top"], params["left"]])
        return out

    monkeypatch.setattr(curl_module, "random_crop", recording_crop)
    model = make_model(CURL, learn=13)  # seed 0; gradient steps after agent steps 11, 12, 13
    model.save(tmp_path / "m.zip")
    model.save_replay_buffer(tmp_path / "replay.pkl")
    loaded = CURL.load(tmp_path / "m.zip", env=FakePixelEnv())
    loaded.load_replay_buffer(tmp_path / "replay.pkl")
    loaded.learn(3, reset_num_timesteps=False)  # 3 more gradient steps

    seed = int(np.random.SeedSequence(0, spawn_key=(0,)).generate_state(1, dtype=np.uint64)[0]) >> 1
    reference = torch.Generator().manual_seed(seed)
    expected = [torch.randint(0, 5, (8,), generator=reference) for _ in range(6 * 3 * 2)]  # 24 -> 20: 0..4
    assert len(recorded) == len(expected)
    for got, exp in zip(recorded, expected):
        assert torch.equal(got, exp)


def test_augmentation_generator_is_not_the_global_torch_stream():
    model = make_model(CURL)  # seed 0
    torch.manual_seed(0)  # what SB3's set_random_seed(0) does to the global generator
    assert not torch.equal(model.aug_generator.get_state(), torch.get_rng_state())


# ------------------------------------------------------------------------------------ defaults and the CLI
def _cli_config(*flags: str):
    from curl_agents.run_config import build_parser, config_from_args

    return config_from_args(build_parser().parse_args([*flags, "--out", "unused"]))


@pytest.mark.parametrize(
    ("algo", "render"),
    # CURL/RAD: render 100, random crop 84 (CURL train.py); DrQ: render 84, shifts (config.yaml image_size);
    # SAC-AE and the pixel SAC baseline of the CURL/SAC-AE tables: render 84, no crop
    [("curl", 100), ("rad", 100), ("drq", 84), ("sac_ae", 84), ("pixel_sac", 84)],
)
def test_train_command_renders_at_the_network_size_unless_the_algorithm_crops(algo, render):
    from curl_agents.run_config import resolved_render_size

    assert resolved_render_size(_cli_config("--algo", algo)) == render
    assert resolved_render_size(_cli_config("--algo", algo, "--image-size", "64")) == render - 84 + 64


@pytest.mark.parametrize(
    ("algo", "cheetah_lr", "alpha_lr", "alpha_betas", "encoder_tau"),
    [
        ("curl", 2e-4, 1e-4, (0.5, 0.999), 0.05),  # CURL appendix: cheetah lr 2e-4; alpha Adam 1e-4, beta1 0.5
        ("drq", 1e-3, 1e-3, (0.9, 0.999), 0.01),  # DrQ config.yaml lr 1e-3 for all; drq.py L197, L305-307
        ("sac_ae", 1e-3, 1e-4, (0.5, 0.999), 0.05),  # SAC-AE train.py: lr 1e-3, alpha 1e-4 / 0.5, encoder tau 0.05
    ],
)
def test_train_command_builds_each_algorithm_with_its_reference_settings(
    algo, cheetah_lr, alpha_lr, alpha_betas, encoder_tau
):
    from curl_agents.run_config import algorithm_class, model_kwargs

    cfg = _cli_config("--algo", algo, "--env", "cheetah-run")
    kwargs = model_kwargs(cfg)
    kwargs.update(
        batch_size=8,
        learning_starts=10,
        buffer_size=200,
        image_size=20,
        policy_kwargs={**kwargs["policy_kwargs"], **POLICY_KWARGS},
    )
    model = algorithm_class(cfg)("CnnPolicy", FakePixelEnv(size=20 + algorithm_class(cfg).render_margin), **kwargs)
    assert model.learning_rate == cheetah_lr
    assert [g["lr"] for g in model.critic.optimizer.param_groups] == [cheetah_lr]
    group = model.alpha_optimizer.param_groups[0]
    assert group["lr"] == alpha_lr and tuple(group["betas"]) == alpha_betas
    assert model.encoder_tau == encoder_tau


def _conv_orthogonality(weight: torch.Tensor) -> torch.Tensor:
    flat = weight.flatten(1)  # (out, in * 9); out <= in * 9
    return flat @ flat.T


def test_drq_initialises_whole_conv_kernels_orthogonally_curl_only_the_centre_tap():
    gain2 = 2.0  # calculate_gain("relu") ** 2
    drq = make_model(DrQ, size=24, image_size=24)
    curl = make_model(CURL)
    for conv in drq.critic.encoder.convs:
        torch.testing.assert_close(_conv_orthogonality(conv.weight), gain2 * torch.eye(conv.weight.shape[0]))
        assert conv.weight[:, :, 0, 0].abs().sum() > 0  # off-centre taps are used (DrQ utils.py weight_init)
    for conv in curl.critic.encoder.convs:
        centre = conv.weight[:, :, 1, 1]
        torch.testing.assert_close(centre @ centre.T, gain2 * torch.eye(conv.weight.shape[0]))
        assert torch.equal(conv.weight.sum(dim=(2, 3)), centre)  # every other tap is zero (delta-orthogonal)


def test_sac_ae_trains_an_autoencoder_on_unaugmented_renders_with_a_tanh_encoder():
    from curl_agents.objectives.reconstruction import ReconstructionObjective

    model = make_model(ALGORITHMS["sac_ae"], **TINY_KWARGS["sac_ae"], learn=12)
    objective = model.aux_objective
    assert isinstance(objective, ReconstructionObjective)
    # SAC-AE train.py: --decoder_latent_lambda 1e-6, --decoder_weight_lambda 1e-7, encoder/decoder lr 1e-3;
    # utils.preprocess_obs bits=5
    assert (objective.latent_lambda, objective.target_bits) == (1e-6, 5)
    assert {g["weight_decay"] for g in objective.optimizer.param_groups} == {0.0, 1e-7}
    assert {g["lr"] for g in objective.optimizer.param_groups} == {1e-3}
    data = model.replay_buffer.sample(4)
    views = model.make_views(data.observations, data.next_observations)
    assert torch.equal(views.obs[0], data.observations.float())  # no augmentation
    assert torch.equal(views.next_obs[0], data.next_observations.float())
    encoder = model.critic.encoder
    with torch.no_grad():
        z = encoder(views.obs[0])
        expected = torch.tanh(encoder.ln(encoder.fc(encoder.conv_features(views.obs[0]).flatten(1))))
    torch.testing.assert_close(z, expected)
    with pytest.raises(ValueError, match="reconstruction"):
        make_model(ALGORITHMS["sac_ae"], **TINY_KWARGS["sac_ae"], aux="curl")


def test_train_command_builds_sac_ae_with_its_objective(tmp_path):
    from curl_agents.run_config import model_kwargs

    cfg = _cli_config("--algo", "sac_ae")
    assert cfg.aux == "reconstruction" and model_kwargs(cfg)["aux"] == "reconstruction"  # the algorithm's own
    assert model_kwargs(cfg)["batch_size"] == 128 and model_kwargs(cfg)["buffer_size"] == 1_000_000  # SAC-AE train.py
    assert model_kwargs(_cli_config("--algo", "curl", "--aux", "reconstruction"))["aux"] == "reconstruction"


def test_defaults_table_in_docs_is_the_generated_one():
    from curl_agents.defaults_table import render

    committed = Path(__file__).resolve().parents[1] / "docs" / "algorithm_defaults.md"
    assert committed.read_text() == render(), "regenerate: python -m curl_agents.defaults_table --out " + str(
        committed.relative_to(committed.parents[1])
    )


def test_nan_loss_is_named_with_the_step():
    model = make_model(learn=20)
    with torch.no_grad():
        model.critic.q1[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"non-finite critic_loss \(nan\) at step \d+ \(gradient step \d+"):
        model.train(1, 8)


def test_state_sac_stops_on_a_non_finite_loss_before_its_optimizer_step():
    model = state_sac(gym.make("Pendulum-v1"), seed=0, learning_starts=5, batch_size=4, policy_kwargs={"net_arch": [8]})
    model.learn(8)
    with torch.no_grad():
        model.critic.qf0[0].weight.fill_(float("nan"))
    actor = [p.detach().clone() for p in model.actor.parameters()]
    with pytest.raises(NonFiniteLossError, match=r"non-finite critic_loss \(nan\) at step \d+ \(gradient step"):
        model.train(1, 4)
    assert all(torch.equal(a, p) for a, p in zip(actor, model.actor.parameters()))  # the actor step never ran


def test_state_sac_factory_has_the_paper_settings():
    env = gym.make("Pendulum-v1")
    model = state_sac(env, seed=0)
    assert model.policy.net_arch == {"pi": [1024, 1024], "qf": [1024, 1024]} or model.policy.net_arch == [1024, 1024]
    assert model.learning_rate == 1e-3 and model.tau == 0.01 and model.target_update_interval == 2
    assert model.batch_size == 128 and model.buffer_size == 100_000 and model.learning_starts == 1000
    assert math.isclose(model.log_ent_coef.exp().item(), 0.1, rel_tol=1e-6)
    group = model.ent_coef_optimizer.param_groups[0]
    assert group["lr"] == 1e-4 and group["betas"] == (0.5, 0.999)
    model.set_logger(configure(None, []))
    model._update_learning_rate([model.actor.optimizer, model.ent_coef_optimizer])  # SB3 must not reset alpha's lr
    assert model.ent_coef_optimizer.param_groups[0]["lr"] == 1e-4


def test_eval_csv_callback_writes_env_step_rows(tmp_path):
    from curl_agents.callbacks import EvalCSV, EvalCSVCallback

    model = make_model(RAD)
    callback = EvalCSVCallback(
        FakePixelEnv(seed=4), tmp_path / "eval.csv", eval_every_agent_steps=12, n_episodes=1, action_repeat=4
    )
    model.learn(25, callback=callback)
    rows = EvalCSV(tmp_path / "eval.csv").rows()
    assert [r["agent_step"] for r in rows] == [12, 24] and [r["env_step"] for r in rows] == [48, 96]
    assert all(r["episodes"] == 1 and np.isfinite(r["mean_return"]) for r in rows)


# ----------------------------------------------------------------------------------- precision and fused step
def _record_output_dtypes(module: torch.nn.Module, seen: list) -> torch.utils.hooks.RemovableHandle:
    return module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))


def test_bf16_autocasts_convolutions_and_linears_but_keeps_fp32_weights_states_and_losses():
    model = make_model(CURL, precision="bf16", learn=12)
    assert model.resolved_precision == "bf16"
    conv_dtypes: list = []
    q_dtypes: list = []
    handles = [
        _record_output_dtypes(model.critic.encoder.convs[0], conv_dtypes),
        _record_output_dtypes(model.critic.q1[0], q_dtypes),
    ]
    model.train(2, 8)
    for h in handles:
        h.remove()
    assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}
    assert q_dtypes and set(q_dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.policy.parameters())
    states = [s for opt in (model.critic.optimizer, model.aux_objective.optimizer) for s in opt.state.values()]
    assert states and all(s["exp_avg"].dtype == torch.float32 for s in states)
    data, views = batch_views(model)
    target = model.target_q(data.rewards, data.dones, views.next_obs)
    assert target.dtype == torch.float32
    assert model.critic_loss(views.obs, data.actions, target).dtype == torch.float32


def test_bf16_critic_loss_is_close_to_fp32_on_the_same_batch():
    model = make_model(CURL, learn=12)
    data, views = batch_views(model)
    torch.manual_seed(3)
    target = model.target_q(data.rewards, data.dones, views.next_obs)
    fp32 = model.critic_loss(views.obs, data.actions, target).item()
    model.resolved_precision = "bf16"
    bf16 = model.critic_loss(views.obs, data.actions, target).item()
    assert bf16 == pytest.approx(fp32, rel=0.03)


def test_auto_precision_follows_the_machine_and_is_re_resolved_on_load(tmp_path):
    from ssl_shared.precision import resolve_precision

    model = make_model(PixelSAC, precision="auto")
    assert model.resolved_precision == resolve_precision("auto", "cpu")
    model.save(tmp_path / "m.zip")
    loaded = PixelSAC.load(tmp_path / "m.zip", env=FakePixelEnv(size=24))
    assert loaded.precision == "auto" and loaded.resolved_precision == resolve_precision("auto", "cpu")
    with pytest.raises(ValueError, match="precision"):
        make_model(PixelSAC, precision="fp16")


def test_compiled_encoders_give_the_eager_losses_and_gradients_and_survive_save_and_load(tmp_path):
    """``compile_encoders``: the critic loss and the encoder's gradients on one batch equal those of the eager
    model (same weights, same batch) up to fused-kernel rounding, the compiler really ran (dynamo counted
    graphs), and a saved model loads compiled with the same parameter names."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    models = {flag: make_model(CURL, compile_encoders=flag, learn=9) for flag in (False, True)}  # no update yet
    eager, compiled = models[False], models[True]
    for (name, a), (_, b) in zip(eager.policy.state_dict().items(), compiled.policy.state_dict().items()):
        assert torch.equal(a, b), name
    data, views = batch_views(eager)
    grads, losses = {}, {}
    for flag, model in models.items():
        torch.manual_seed(3)
        target = model.target_q(data.rewards, data.dones, views.next_obs)
        loss = model.critic_loss(views.obs, data.actions, target)
        model.critic.zero_grad()
        loss.backward()
        losses[flag] = loss.item()
        grads[flag] = [p.grad.clone() for p in model.critic.encoder.parameters()]
    assert counters["stats"]["unique_graphs"] > 0
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    for g_compiled, g_eager in zip(grads[True], grads[False]):
        torch.testing.assert_close(g_compiled, g_eager, rtol=1e-4, atol=1e-6)
    compiled.save(tmp_path / "m.zip")
    loaded = CURL.load(tmp_path / "m.zip", env=FakePixelEnv(size=24))
    assert loaded.compile_encoders and loaded.critic.encoder._compiled_call_impl is not None
    assert list(loaded.policy.state_dict()) == list(eager.policy.state_dict())


def test_fused_step_encodes_the_anchor_once_per_gradient_step():
    counts = {}
    for fused in (False, True):
        model = make_model(CURL, fused_encoder_step=fused, learn=12)
        calls: list = []
        handle = model.critic.encoder.register_forward_hook(lambda _m, _i, _o, calls=calls: calls.append(1))
        model.train(4, 8)
        handle.remove()
        counts[fused] = len(calls)
    assert counts == {False: 8, True: 4}  # critic + CURL anchor each step, or one shared pass


def test_fused_step_is_one_adam_step_on_the_summed_critic_and_aux_gradient():
    """First Adam step (bias-corrected m = g, v = g^2): delta = -lr * g / (|g| + eps), g = d(L_Q + w L_aux)."""
    model = make_model(CURL, fused_encoder_step=True, aux_weight=0.5, learn=9)  # learning_starts 10: no step yet
    assert model._n_updates == 0
    encoder_ids = {id(p) for p in model.critic.encoder.parameters()}
    assert not any(id(p) in encoder_ids for g in model.aux_objective.optimizer.param_groups for p in g["params"])
    data, views = batch_views(model)
    model.replay_buffer.sample = lambda *a, **k: data
    model.make_views = lambda *a: views
    params = list(model.critic.encoder.parameters())
    before = [p.detach().clone() for p in params]
    torch.manual_seed(7)
    target = model.target_q(data.rewards, data.dones, views.next_obs)
    critic_loss = model.critic_loss(views.obs, data.actions, target)
    aux_loss, _ = model.aux_objective.loss(model._aux_batch(views, data))
    grads = torch.autograd.grad(critic_loss + 0.5 * aux_loss, params)
    torch.manual_seed(7)
    model._gradient_step(8, defaultdict(list), update_actor=False, update_target=False)
    lr = model.critic.optimizer.param_groups[0]["lr"]
    for p, p0, g in zip(params, before, grads):
        expected = p0 - lr * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-4, atol=1e-6)
