"""Training on two DeepMind Control envs at once (SB3 DummyVecEnv and SubprocVecEnv) with every pixel algorithm.

Each env is wrapped in a recorder that keeps every transition it emitted (in its own process under
SubprocVecEnv). After ``learn``, every transition in the replay buffer must equal the recorded one of
its env, stacks included, and each episode end must be where that env reported it.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the dm_control import

import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from curl_agents.algorithms import ALGORITHMS
from curl_agents.envs import make_env

RENDER = 24
#: network input per algorithm: the crop algorithms crop 24 -> 20, the others train on the render
IMAGE_SIZE = {"curl": 20, "rad": 20, "drq": 24, "sac_ae": 24, "pixel_sac": 24}
ACTION_REPEAT = 2
EPISODE_AGENT_STEPS = 6  # episode_length 12 env steps at action repeat 2
VEC_STEPS = 20  # learn(2 * VEC_STEPS): SB3 counts the agent steps of all envs
LEARNING_STARTS = 10
POLICY_KWARGS = {"feature_dim": 8, "hidden_dim": 16, "num_filters": 4, "num_layers": 2}


@dataclass
class Record:
    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool


class Recorder(gym.Wrapper):
    """Keeps every transition the wrapped env emits, in order; ``clear()`` forgets them."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.records: list[Record] = []

    def clear(self) -> None:
        self.records = []

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.records.append(Record(self._obs, np.array(action), reward, next_obs, terminated, truncated))
        self._obs = next_obs
        return next_obs, reward, terminated, truncated, info


def recorded_cartpole(seed: int) -> Recorder:
    env = make_env(
        "cartpole-swingup",
        image_size=RENDER,
        action_repeat=ACTION_REPEAT,
        episode_length=EPISODE_AGENT_STEPS * ACTION_REPEAT,
        seed=seed,
    )
    return Recorder(env)


@pytest.fixture(scope="module", params=["dummy", "subproc"])
def two_envs(request):
    """Two recorded cartpole envs, shared by the tests of one VecEnv kind (SubprocVecEnv starts slowly)."""
    makers = [functools.partial(recorded_cartpole, seed) for seed in (0, 1)]
    venv = DummyVecEnv(makers) if request.param == "dummy" else SubprocVecEnv(makers)
    yield venv
    venv.close()


@pytest.fixture
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_and_count(name: str, venv: VecEnv) -> tuple[object, list[int]]:
    """``learn`` on ``venv`` with train_freq 1, gradient_steps 1; returns the model and the gradient_steps
    argument of every ``train`` call."""
    extra = {"initial_updates": 0} if name == "sac_ae" else {}  # no first-call burst: one step per call
    model = ALGORITHMS[name](
        "CnnPolicy",
        venv,
        batch_size=8,
        learning_starts=LEARNING_STARTS,
        buffer_size=200,
        train_freq=1,
        gradient_steps=1,
        seed=0,
        image_size=IMAGE_SIZE[name],
        policy_kwargs=dict(POLICY_KWARGS),
        **extra,
    )
    calls: list[int] = []
    train = model.train

    def counted_train(gradient_steps: int, batch_size: int) -> None:
        calls.append(gradient_steps)
        train(gradient_steps, batch_size)

    model.train = counted_train
    model.learn(venv.num_envs * VEC_STEPS)
    return model, calls


@pytest.mark.parametrize("name", [name for name in ALGORITHMS if name != "state_sac"])
def test_two_envs_train_once_per_vec_step_and_store_each_envs_own_transitions(two_envs, name, one_torch_thread):
    two_envs.env_method("clear")
    model, calls = train_and_count(name, two_envs)
    # SB3 trains after a vec step once num_timesteps (2 per vec step) exceeds learning_starts (10):
    # after vec steps 6..20, i.e. 15 calls of one gradient step each.
    assert calls == [1] * 15 and model._n_updates == 15

    records = two_envs.get_attr("records")
    assert [len(r) for r in records] == [VEC_STEPS, VEC_STEPS]
    assert not np.array_equal(records[0][0].obs, records[1][0].obs)  # the envs' frames differ
    buffer = model.replay_buffer
    assert buffer.live_counts().tolist() == [VEC_STEPS, VEC_STEPS]

    # every stored transition, at its position: what its env emitted at that step
    idx = np.arange(buffer.size())
    samples = buffer.sample_indices(idx)
    add_numbers, env_index = buffer.locate(idx)
    assert sorted(zip(env_index.tolist(), add_numbers.tolist())) == [(e, t) for e in (0, 1) for t in range(VEC_STEPS)]
    for j, (t, env) in enumerate(zip(add_numbers, env_index)):
        record = records[env][t]
        np.testing.assert_array_equal(samples.observations[j].numpy(), record.obs)
        np.testing.assert_array_equal(samples.next_observations[j].numpy(), record.next_obs)
        np.testing.assert_allclose(samples.actions[j].numpy(), record.action, atol=1e-6)
        assert samples.rewards[j, 0].item() == pytest.approx(record.reward, rel=1e-6)
        assert samples.dones[j, 0].item() == 0.0  # time limits bootstrap: never a done
        assert buffer.timeouts[t % buffer.buffer_size, env] == record.truncated

    # episode boundaries: each env truncates every 6 agent steps; the stored final next_obs is the
    # terminal frame stack, and the next transition starts from the reset stack (first frame repeated)
    for env in (0, 1):
        ends = [t for t, r in enumerate(records[env]) if r.truncated]
        assert ends == [5, 11, 17]
        for t in ends:
            reset_obs = records[env][t + 1].obs
            assert not np.array_equal(records[env][t].next_obs, reset_obs)
            np.testing.assert_array_equal(reset_obs[0:3], reset_obs[3:6])
            np.testing.assert_array_equal(reset_obs[3:6], reset_obs[6:9])

    # uniform samples (the path train() takes) are transitions some env emitted, with matching parts
    emitted = {(r.obs.tobytes(), r.next_obs.tobytes()): r for env_records in records for r in env_records}
    batch = buffer.sample(64)
    for j in range(64):
        key = (batch.observations[j].numpy().tobytes(), batch.next_observations[j].numpy().tobytes())
        assert key in emitted
        np.testing.assert_allclose(batch.actions[j].numpy(), emitted[key].action, atol=1e-6)
