"""Frame translation in front of an agent (curl_agents.frame_translation): stacks of translated frames, each once."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the dm_control import

import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from curl_agents.algorithms import ALGORITHMS
from curl_agents.envs import make_env
from curl_agents.frame_translation import ModuleFrameTranslator, TranslateFrames, VecTranslateFrames

pytestmark = pytest.mark.render

SIZE = 32
TINY_POLICY = dict(feature_dim=8, hidden_dim=16, num_filters=4, num_layers=2)


def _env(seed: int = 0, episode_length: int = 40, frame_stack: int = 3):
    return make_env(
        "cartpole-swingup", image_size=SIZE, episode_length=episode_length, seed=seed, frame_stack=frame_stack
    )


class Inverting:
    """A translator with a known output (255 - frame) that records every call's batch."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        self.calls.append(frames.copy())
        return 255 - frames

    @property
    def frames(self) -> int:
        return sum(len(batch) for batch in self.calls)


def _actions(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1)).astype(np.float32)


def test_stack_is_built_from_translated_frames_and_each_frame_is_translated_once() -> None:
    raw, wrapped = _env(), TranslateFrames(_env(), translator := Inverting())
    obs_raw, _ = raw.reset(seed=3)
    obs, _ = wrapped.reset(seed=3)
    np.testing.assert_array_equal(obs, 255 - obs_raw)  # reset stack: the first frame k times, translated
    steps = 0
    for action in _actions(5, seed=1):  # 40 env steps / action repeat 8 = 5 agent steps: the episode ends
        obs_raw, reward_raw, term_raw, trunc_raw, _ = raw.step(action)
        obs, reward, term, trunc, _ = wrapped.step(action)
        steps += 1
        np.testing.assert_array_equal(obs, 255 - obs_raw)  # every frame of the stack is a translated frame
        assert (reward, term, trunc) == (reward_raw, term_raw, trunc_raw)
    assert trunc
    # one translator call per rendered frame (reset + each step), one frame each, the env's newest frame
    assert translator.frames == 1 + steps and all(len(batch) == 1 for batch in translator.calls)
    np.testing.assert_array_equal(translator.calls[-1][0], obs_raw[-3:])
    assert wrapped.step_latency.count == steps


def test_identity_translator_leaves_observations_and_actions_unchanged() -> None:
    raw = _env(seed=2)
    wrapped = TranslateFrames(_env(seed=2), ModuleFrameTranslator(torch.nn.Identity()))
    for algo in ("curl", "rad", "drq", "pixel_sac", "sac_ae"):
        model = ALGORITHMS[algo](
            "CnnPolicy",
            raw,
            image_size=SIZE - 4 if algo in ("curl", "rad") else SIZE,
            buffer_size=10,
            policy_kwargs=TINY_POLICY,
            seed=0,
            device="cpu",
        )
        obs_raw, _ = raw.reset(seed=5)
        obs, _ = wrapped.reset(seed=5)
        for _ in range(3):
            np.testing.assert_array_equal(obs, obs_raw)
            action_raw = model.predict(obs_raw, deterministic=True)[0]
            action = model.predict(obs, deterministic=True)[0]
            np.testing.assert_array_equal(action, action_raw)
            obs_raw = raw.step(action_raw)[0]
            obs = wrapped.step(action)[0]
    assert wrapped.translator.latency.count > 0 and wrapped.translator.latency.seconds > 0


def test_module_translator_maps_uint8_through_the_unit_range_in_eval_mode_without_grad() -> None:
    seen = {}

    class Halve(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.update(training=self.training, grad=torch.is_grad_enabled(), low=float(x.min()), high=float(x.max()))
            return x * 0.5

    frames = np.array([0, 1, 127, 128, 254, 255], np.uint8).reshape(1, 3, 1, 2)
    out = ModuleFrameTranslator(Halve().train())(frames)
    expected = np.round(((frames / 127.5 - 1.0) * 0.5 + 1.0) * 127.5).astype(np.uint8)  # written out
    np.testing.assert_array_equal(out, expected)
    assert seen == {"training": False, "grad": False, "low": -1.0, "high": 1.0}


def test_vec_wrapper_translates_each_frame_once_also_across_auto_resets() -> None:
    lengths = (16, 24)  # 2 and 3 agent steps: the envs reset at different steps

    def venv():
        return DummyVecEnv(
            [lambda length=length, i=i: _env(seed=i, episode_length=length) for i, length in enumerate(lengths)]
        )

    raw, wrapped = venv(), VecTranslateFrames(venv(), translator := Inverting())
    raw.seed(7)
    wrapped.seed(7)
    np.testing.assert_array_equal(wrapped.reset(), 255 - raw.reset())
    rendered = 2
    for actions in _actions(7 * 2, seed=3).reshape(7, 2, 1):
        obs_raw, rewards_raw, dones_raw, infos_raw = raw.step(actions)
        obs, rewards, dones, infos = wrapped.step(actions)
        np.testing.assert_array_equal(obs, 255 - obs_raw)
        np.testing.assert_array_equal(rewards, rewards_raw)
        np.testing.assert_array_equal(dones, dones_raw)
        for i in np.flatnonzero(dones):
            np.testing.assert_array_equal(infos[i]["terminal_observation"], 255 - infos_raw[i]["terminal_observation"])
        rendered += 2 + int(dones.sum())  # a new frame per env, plus the first frame of each new episode
    assert translator.frames == rendered
    assert len(translator.calls) == 1 + 7  # one batched call per reset / step


@pytest.mark.filterwarnings("ignore:Evaluation environment is not wrapped with a ``Monitor``")
def test_evaluate_policy_and_a_saved_agent_work_behind_the_translator(tmp_path) -> None:
    env = _env(seed=1)
    model = ALGORITHMS["rad"]("CnnPolicy", env, image_size=SIZE - 4, buffer_size=10, policy_kwargs=TINY_POLICY, seed=0)
    model.save(tmp_path / "agent.zip")
    loaded = ALGORITHMS["rad"].load(tmp_path / "agent.zip", device="cpu")
    plain = evaluate_policy(loaded, DummyVecEnv([lambda: _env(seed=1)]), n_eval_episodes=2, return_episode_rewards=True)
    identity = ModuleFrameTranslator(torch.nn.Identity())
    behind = evaluate_policy(
        loaded,
        VecTranslateFrames(DummyVecEnv([lambda: _env(seed=1)]), identity),
        n_eval_episodes=2,
        return_episode_rewards=True,
    )
    single = evaluate_policy(
        loaded, TranslateFrames(_env(seed=1), identity), n_eval_episodes=2, return_episode_rewards=True
    )
    assert plain == behind == single
    assert plain[1] == [5, 5]  # two whole episodes of 5 agent steps


def test_bad_envs_and_translators_are_refused() -> None:
    with pytest.raises(ValueError, match="frame-stack observations"):
        TranslateFrames(make_env("cartpole-swingup", from_pixels=False), Inverting())
    wrapped = TranslateFrames(_env(), lambda frames: frames[:, :, :8])
    with pytest.raises(ValueError, match="must return"):
        wrapped.reset(seed=0)
