"""Behaviour of the SB3-native pixel SAC algorithms (CURL, RAD, DrQ, pixel SAC) and the state-SAC factory.

Tiny configurations on a fake frame-stacked pixel env (24 px, crop 20, 2 conv layers of 4 filters,
feature dim 8, hidden 16, batch 8); every check is against a formula written out here.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

from curl_agents.algorithms import CURL, RAD, DrQ, PixelSAC, state_sac
from ssl_shared.augment.crop import random_shift

POLICY_KWARGS = {"feature_dim": 8, "hidden_dim": 16, "num_filters": 4, "num_layers": 2}


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


def make_model(cls=CURL, size: int = 24, image_size: int = 20, learn: int = 0, **kwargs):
    kwargs.setdefault("policy_kwargs", dict(POLICY_KWARGS))
    model = cls("CnnPolicy", FakePixelEnv(size=size), batch_size=8, learning_starts=10, buffer_size=200, seed=0,
                image_size=image_size, **kwargs)
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


def test_target_update_moves_by_tau():
    model = make_model(learn=20)
    online_enc, target_enc = snapshot(model.critic.encoder), snapshot(model.critic_target.encoder)
    online_q, target_q = snapshot(model.critic.q1), snapshot(model.critic_target.q1)
    model._update_targets()
    for k, t in target_enc.items():
        expected = (1 - 0.05) * t + 0.05 * online_enc[k]
        torch.testing.assert_close(model.critic_target.encoder.state_dict()[k], expected)
    for k, t in target_q.items():
        expected = (1 - 0.01) * t + 0.01 * online_q[k]
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


def test_drq_target_averages_k_shifted_views():
    model = make_model(DrQ, size=24, image_size=24, learn=20)
    assert model.k_target == 2 and model.m_q == 2
    data = model.replay_buffer.sample(4)
    model.aug_generator.manual_seed(3)
    views = model.make_views(data.observations, data.next_observations)
    gen = torch.Generator().manual_seed(3)
    expected_obs = [random_shift(data.observations, 4, generator=gen).float() for _ in range(2)]
    expected_next = [random_shift(data.next_observations, 4, generator=gen).float() for _ in range(2)]
    for got, exp in zip(views.obs + views.next_obs, expected_obs + expected_next):
        assert torch.equal(got, exp)
    assert not torch.equal(views.next_obs[0], views.next_obs[1])
    reward, done = data.rewards, data.dones
    torch.manual_seed(11)
    got = model.target_q(reward, done, views.next_obs)
    torch.manual_seed(11)
    noise = torch.randn(2 * 4, 2)  # one draw for the K stacked views
    with torch.no_grad():
        values = [_soft_value_by_hand(model, views.next_obs[k], noise[4 * k : 4 * (k + 1)]) for k in range(2)]
    expected = reward + 0.99 * (1 - done) * (values[0] + values[1]) / 2
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


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
    # training continues identically from the loaded copy (same RNG, same replay)
    loaded.replay_buffer = model.replay_buffer
    loaded.aug_generator.set_state(model.aug_generator.get_state())
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


@pytest.mark.parametrize("cls", [PixelSAC, RAD])
def test_sb3_callbacks_evaluate_policy_and_tensorboard(tmp_path, cls):
    model = make_model(cls, tensorboard_log=str(tmp_path / "tb"))
    eval_cb = EvalCallback(Monitor(FakePixelEnv(seed=1)), n_eval_episodes=2, eval_freq=15,
                           log_path=str(tmp_path / "eval"), verbose=0)
    ckpt_cb = CheckpointCallback(save_freq=20, save_path=str(tmp_path / "ckpt"), name_prefix="m")
    model.learn(30, callback=[eval_cb, ckpt_cb])
    assert len(eval_cb.evaluations_results) == 2 and np.isfinite(eval_cb.last_mean_reward)
    assert (tmp_path / "ckpt" / "m_20_steps.zip").exists()
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))
    mean, std = evaluate_policy(model, Monitor(FakePixelEnv(seed=2)), n_eval_episodes=2)
    assert math.isfinite(mean) and std >= 0
    assert model._n_updates == 30 - 10


def test_nan_loss_is_named_with_the_step():
    model = make_model(learn=20)
    with torch.no_grad():
        model.critic.q1[0].weight.fill_(float("nan"))
    with pytest.raises(RuntimeError, match=r"non-finite critic_loss .* gradient step \d+"):
        model.train(1, 8)


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
    callback = EvalCSVCallback(FakePixelEnv(seed=4), tmp_path / "eval.csv", eval_every_agent_steps=12, n_episodes=1,
                               action_repeat=4)
    model.learn(25, callback=callback)
    rows = EvalCSV(tmp_path / "eval.csv").rows()
    assert [r["agent_step"] for r in rows] == [12, 24] and [r["env_step"] for r in rows] == [48, 96]
    assert all(r["episodes"] == 1 and np.isfinite(r["mean_return"]) for r in rows)
