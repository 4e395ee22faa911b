"""Tests of curl_agents.replay.FrameReplayBuffer.

Most tests drive a fake env whose frames encode a frame counter, through SB3's DummyVecEnv and the
same terminal-observation handling as ``OffPolicyAlgorithm._store_transition``; a recorder keeps every
transition the env emitted, and the buffer's rebuilt stacks must equal those records exactly.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the dm_control import

import pickle
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import DummyVecEnv

from curl_agents.envs import make_env
from curl_agents.replay import FrameReplayBuffer

STACK = 3
SIZE = 10  # > 3 * STACK, else SB3 takes the images for channel-last and transposes them


def numbered_frame(number: int) -> np.ndarray:
    """A (3, SIZE, SIZE) frame whose channels spell ``number`` in base 256."""
    frame = np.empty((3, SIZE, SIZE), dtype=np.uint8)
    for channel in range(3):
        frame[channel] = (number >> (8 * channel)) & 0xFF
    return frame


class NumberedFrameEnv(gym.Env):
    """Frame-stacked pixel env with numbered frames, random episode lengths and some terminations.

    With probability ``repeat_prob`` a step shows the previous frame again (a static scene), so equal
    consecutive frames also occur inside episodes.
    """

    def __init__(self, seed: int, first_number: int = 0, max_length: int = 12, repeat_prob: float = 0.2):
        self.observation_space = spaces.Box(0, 255, (3 * STACK, SIZE, SIZE), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._rng = np.random.default_rng(seed)
        self._number = first_number
        self._max_length = max_length
        self._repeat_prob = repeat_prob

    def _new_frame(self) -> np.ndarray:
        self._number += 1
        return numbered_frame(self._number)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t, self._limit = 0, int(self._rng.integers(2, self._max_length + 1))
        self._frames = [self._new_frame()] * STACK
        return np.concatenate(self._frames), {}

    def step(self, action):
        self._t += 1
        repeat = self._rng.random() < self._repeat_prob
        frame = self._frames[-1] if repeat else self._new_frame()
        self._frames = self._frames[1:] + [frame]
        reward = float(np.sum(action)) + self._t
        terminated = bool(self._rng.random() < 0.05)
        truncated = not terminated and self._t >= self._limit
        return np.concatenate(self._frames), reward, terminated, truncated, {}


@dataclass
class Record:
    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool


class Recorder(gym.Wrapper):
    """Keeps every transition the wrapped env emits, in order."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.records: list[Record] = []

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.records.append(Record(self._obs, np.array(action), reward, next_obs, terminated, truncated))
        self._obs = next_obs
        return next_obs, reward, terminated, truncated, info


def fake_vec_env(n_envs: int, seed: int = 0, **kwargs) -> DummyVecEnv:
    makers = [
        (lambda i=i: Recorder(NumberedFrameEnv(seed=seed + i, first_number=1_000_000 * i, **kwargs)))
        for i in range(n_envs)
    ]
    return DummyVecEnv(makers)


def fill(buffer: FrameReplayBuffer, venv: DummyVecEnv, steps: int, seed: int = 0) -> None:
    """The add() loop of SB3's OffPolicyAlgorithm: terminal observations replace the auto-reset ones."""
    rng = np.random.default_rng(seed)
    obs = venv.reset()
    for _ in range(steps):
        actions = rng.uniform(-1, 1, size=(venv.num_envs, *venv.action_space.shape)).astype(np.float32)
        new_obs, rewards, dones, infos = venv.step(actions)
        next_obs = new_obs.copy()
        for i, done in enumerate(dones):
            if done:
                next_obs[i] = infos[i]["terminal_observation"]
        buffer.add(obs, next_obs, actions, rewards, dones, infos)
        obs = new_obs


def new_buffer(buffer_size: int, n_envs: int = 1, **kwargs) -> FrameReplayBuffer:
    obs_space = spaces.Box(0, 255, (3 * STACK, SIZE, SIZE), np.uint8)
    act_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    return FrameReplayBuffer(buffer_size, obs_space, act_space, device="cpu", n_envs=n_envs, **kwargs)


def assert_matches_records(buffer: FrameReplayBuffer, records: list[list[Record]], atol: float = 0.0) -> None:
    """Every live transition equals what the env emitted at that step; dones = true terminations."""
    idx = np.arange(buffer.size())
    samples = buffer.sample_indices(idx)
    add_numbers, env_index = buffer.locate(idx)
    assert samples.observations.dtype == torch.uint8
    for j, (t, env) in enumerate(zip(add_numbers, env_index)):
        record = records[env][t]
        np.testing.assert_array_equal(samples.observations[j].numpy(), record.obs)
        np.testing.assert_array_equal(samples.next_observations[j].numpy(), record.next_obs)
        np.testing.assert_allclose(samples.actions[j].numpy(), record.action, atol=atol)
        assert samples.rewards[j, 0].item() == pytest.approx(record.reward, rel=1e-6)
        assert samples.dones[j, 0].item() == float(record.terminated)


def live_add_numbers(buffer: FrameReplayBuffer) -> list[list[int]]:
    add_numbers, env_index = buffer.locate(np.arange(buffer.size()))
    return [add_numbers[env_index == env].tolist() for env in range(buffer.n_envs)]


@pytest.mark.parametrize("n_envs", [1, 2])
def test_stacks_equal_the_emitted_ones_across_episodes_and_wraparound(n_envs):
    venv = fake_vec_env(n_envs)
    buffer = new_buffer(40 * n_envs, n_envs=n_envs, frame_capacity=200)  # ample frames: no eviction
    steps = 137
    fill(buffer, venv, steps)
    records = [env.records for env in venv.envs]
    assert buffer.size() == 40 * n_envs
    # the live transitions are the newest 40 of every env
    assert live_add_numbers(buffer) == [list(range(steps - 40, steps))] * n_envs
    assert_matches_records(buffer, records)
    flags = [(r.terminated, r.truncated) for r in records[0][steps - 40 :]]
    assert (True, False) in flags and (False, True) in flags  # both episode ends are covered


@pytest.mark.parametrize("frame_capacity", [None, STACK + 1, 7])
def test_frame_overwrite_evicts_the_transitions_that_use_it(frame_capacity):
    venv = fake_vec_env(1, seed=3, max_length=4)  # short episodes: one extra frame per episode start
    buffer = new_buffer(30, frame_capacity=frame_capacity)
    fill(buffer, venv, 101)
    live = live_add_numbers(buffer)[0]
    assert 1 <= len(live) <= 30
    assert live == list(range(101 - len(live), 101))  # oldest leave first
    assert_matches_records(buffer, [venv.envs[0].records])


def test_default_frame_capacity_holds_buffer_size_transitions_for_long_episodes():
    venv = fake_vec_env(1, seed=4, max_length=40)
    buffer = new_buffer(60)
    fill(buffer, venv, 150)
    assert buffer.size() == 60 and buffer.full
    assert_matches_records(buffer, [venv.envs[0].records])


def test_restart_mid_episode_starts_a_new_stack():
    """A second learn() resets the env mid-episode without a done: the next obs is a fresh stack."""
    buffer = new_buffer(100, frame_capacity=300)
    first, second = fake_vec_env(1, seed=11, max_length=40), fake_vec_env(1, seed=12, max_length=40)
    fill(buffer, first, 5)
    fill(buffer, second, 7)
    assert not (first.envs[0].records[-1].terminated or first.envs[0].records[-1].truncated)
    assert_matches_records(buffer, [first.envs[0].records + second.envs[0].records])


def test_dones_are_true_terminations_only_unless_timeouts_count():
    venv = fake_vec_env(1, seed=5)
    keep, count = new_buffer(200), new_buffer(200, handle_timeout_termination=False)
    fill(keep, venv, 80)
    venv = fake_vec_env(1, seed=5)
    fill(count, venv, 80)
    records = venv.envs[0].records
    idx = np.arange(80)
    expected_keep = [float(r.terminated) for r in records]
    expected_count = [float(r.terminated or r.truncated) for r in records]
    assert keep.sample_indices(idx).dones[:, 0].tolist() == expected_keep
    assert count.sample_indices(idx).dones[:, 0].tolist() == expected_count
    assert 0 < sum(expected_keep) < sum(expected_count)


def test_truncated_transition_keeps_the_final_observation():
    venv = fake_vec_env(1, seed=6, repeat_prob=0.0)
    buffer = new_buffer(100)
    fill(buffer, venv, 30)
    records = venv.envs[0].records
    t = next(i for i, r in enumerate(records) if r.truncated)
    sample = buffer.sample_indices(np.array([t, t + 1]))
    final, reset = sample.next_observations[0].numpy(), sample.observations[1].numpy()
    np.testing.assert_array_equal(final, records[t].next_obs)
    frame_number = int(final[-3:, 0, 0].astype(np.int64) @ np.array([1, 256, 65536]))
    np.testing.assert_array_equal(reset, np.concatenate([numbered_frame(frame_number + 1)] * STACK))


def newest_frame_number(stack: np.ndarray) -> int:
    """The number spelled by the newest frame of a (3 * STACK, SIZE, SIZE) stack (see numbered_frame)."""
    return int(stack[-3:, 0, 0].astype(np.int64) @ np.array([1, 256, 65536]))


def test_sample_is_uniform_over_live_transitions():
    """Frequencies of 20,000 draws over 20 live transitions against the uniform distribution (chi-square)."""
    venv = fake_vec_env(1, seed=7, repeat_prob=0.0)  # every next_obs ends in a new frame: it names its transition
    buffer = new_buffer(50)
    fill(buffer, venv, 20)
    live = {newest_frame_number(r.next_obs): t for t, r in enumerate(venv.envs[0].records)}
    assert len(live) == 20
    np.random.seed(0)
    counts = np.zeros(20)
    for _ in range(40):
        sampled = buffer.sample(500)
        for stack in sampled.next_observations:
            counts[live[newest_frame_number(stack.numpy())]] += 1
    expected = 20_000 / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.82  # the 0.999 quantile of chi-square with 19 degrees of freedom
    assert counts.min() > 0.8 * expected and counts.max() < 1.2 * expected
    assert sampled.discounts is None  # one-step returns: SAC uses its own gamma
    assert sampled.observations.shape == (500, 3 * STACK, SIZE, SIZE)
    assert sampled.actions.dtype == torch.float32 and sampled.dones.shape == (500, 1)


def test_memory_accounting_by_hand():
    """100,000 transitions of 9x100x100 stacks (3 RGB frames), 1-d actions, default frame capacity."""
    obs_space = spaces.Box(0, 255, (9, 100, 100), np.uint8)
    act_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    buffer = FrameReplayBuffer(100_000, obs_space, act_space, device="cpu")  # torch.empty: not committed
    # frame store: 105,006 frames (100,000 + 5% for episode starts + 2 x 3) of 3 x 100 x 100 uint8
    assert tuple(buffer.frames.shape) == (105_006, 3, 100, 100)
    frames = 105_006 * 30_000  # 3,150,180,000 B
    per_transition = 32 + 4 + 4 + 1 + 1  # 4 int64 frame numbers, float32 action, float32 reward, 2 bool flags
    last_next_obs = 90_000  # one cached 9x100x100 stack
    assert buffer.nbytes() == frames + 100_000 * per_transition + last_next_obs == 3_154_470_000
    assert buffer.bytes_per_transition() == pytest.approx(31_544.7)
    official = 180_012  # official CURL: two 9x100x100 uint8 stacks + action + reward + not_done (4 B each)
    assert official / buffer.bytes_per_transition() > 5.7


def test_save_load_and_pickle_round_trip(tmp_path):
    venv = fake_vec_env(2, seed=8)
    buffer = new_buffer(40, n_envs=2)
    fill(buffer, venv, 33)
    path = tmp_path / "replay.pt"
    buffer.save(path)
    assert not (tmp_path / "replay.pt.tmp").exists()
    restored = new_buffer(40, n_envs=2)
    restored.load(path)
    unpickled = pickle.loads(pickle.dumps(buffer))
    idx = np.arange(buffer.size())
    for other in (restored, unpickled):
        assert other.size() == buffer.size()
        for a, b in zip(buffer.sample_indices(idx)[:5], other.sample_indices(idx)[:5]):
            assert torch.equal(a, b)
    # the restored buffer continues exactly like the original
    fill(buffer, fake_vec_env(2, seed=9), 25)
    fill(restored, fake_vec_env(2, seed=9), 25)
    idx = np.arange(buffer.size())
    for a, b in zip(buffer.sample_indices(idx)[:5], restored.sample_indices(idx)[:5]):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="config"):
        new_buffer(42, n_envs=2).load(path)


def test_save_writes_only_the_frames_in_use(tmp_path):
    buffer = new_buffer(1000)
    fill(buffer, fake_vec_env(1, seed=14), 10)
    buffer.save(tmp_path / "small.pt")
    store_bytes = buffer.frames.numel()  # uint8
    assert (tmp_path / "small.pt").stat().st_size < 0.2 * store_bytes


def test_invalid_use_raises_value_error():
    act_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(ValueError, match="ReplayBuffer"):
        FrameReplayBuffer(10, spaces.Box(-1.0, 1.0, (5,), np.float32), act_space, device="cpu")
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        new_buffer(10, optimize_memory_usage=True)
    with pytest.raises(ValueError, match="frame_capacity"):
        new_buffer(10, frame_capacity=STACK)
    buffer = new_buffer(10)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4)
    obs = np.zeros((1, 3 * STACK, SIZE, SIZE), np.uint8)
    shifted_wrong = obs.copy()
    shifted_wrong[0, 0] = 1
    with pytest.raises(ValueError, match="shifted"):
        buffer.add(obs, shifted_wrong, np.zeros((1, 2)), np.zeros(1), np.zeros(1), [{}])
    with pytest.raises(ValueError, match="uint8"):
        buffer.add(obs.astype(np.float32), obs, np.zeros((1, 2)), np.zeros(1), np.zeros(1), [{}])


def test_real_dmc_env_stacks_are_rebuilt_exactly():
    env = Recorder(make_env("cartpole-swingup", image_size=16, action_repeat=2, episode_length=16, seed=0))
    venv = DummyVecEnv([lambda: env])
    buffer = FrameReplayBuffer(20, venv.observation_space, venv.action_space, device="cpu")
    fill(buffer, venv, 30)
    assert buffer.size() == 20
    assert_matches_records(buffer, [env.records])
    assert sum(r.truncated for r in env.records[-20:]) >= 2 and not any(r.terminated for r in env.records)
    venv.close()


@pytest.fixture
def one_torch_thread():
    """Tiny networks run far faster on one thread than on two busy cores; restore the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_inside_sb3_sac_learn(one_torch_thread):
    venv = fake_vec_env(1, seed=10, max_length=40)
    model = SAC(
        "MlpPolicy",
        venv,
        buffer_size=50,
        batch_size=8,
        learning_starts=10,
        replay_buffer_class=FrameReplayBuffer,
        policy_kwargs={"net_arch": [8]},
        device="cpu",
        seed=0,
    )
    model.learn(total_timesteps=70)
    buffer = model.replay_buffer
    assert isinstance(buffer, FrameReplayBuffer) and buffer.size() == 50
    assert_matches_records(buffer, [venv.envs[0].records], atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("storage_device", ["auto", "cpu"])
def test_cuda_storage_gives_the_same_samples(storage_device):
    obs_space = spaces.Box(0, 255, (3 * STACK, SIZE, SIZE), np.uint8)
    act_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    gpu = FrameReplayBuffer(40, obs_space, act_space, device="cuda", storage_device=storage_device)
    cpu = new_buffer(40)
    fill(gpu, fake_vec_env(1, seed=13), 60)
    fill(cpu, fake_vec_env(1, seed=13), 60)
    assert gpu.frames.is_cuda == (storage_device == "auto")  # a tiny store fits on the GPU
    assert gpu.pinned == (storage_device == "cpu")
    idx = np.arange(cpu.size())
    for a, b in zip(gpu.sample_indices(idx)[:5], cpu.sample_indices(idx)[:5]):
        assert a.is_cuda and torch.equal(a.cpu(), b)
