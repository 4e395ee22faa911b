"""Tests of curl_agents.envs: tiny images, short episodes."""

from __future__ import annotations

import ast
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the dm_control import

import subprocess
import sys
from pathlib import Path

import dm_env
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from curl_agents.envs import (
    SUITE_TASKS,
    agent_steps,
    env_steps,
    make_env,
    parse_env_id,
    register_envs,
    valid_task_names,
)
from curl_agents.presets import PLANET_PRESETS

SIZE = 16


def _rollout_actions(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, dim)).astype(np.float32)


def test_pixel_observation_shape_dtype_and_space():
    env = make_env("cartpole-swingup", image_size=SIZE, frame_stack=3, episode_length=40, seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (9, SIZE, SIZE), np.uint8)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    obs, _ = env.reset()
    assert obs.shape == (9, SIZE, SIZE) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(reward, float)


@pytest.mark.filterwarnings("ignore:.*(not having a spec|minimal resolution|infinity).*:UserWarning")
@pytest.mark.parametrize("from_pixels", [True, False])
def test_gymnasium_and_sb3_env_checkers_pass(from_pixels):
    env = make_env("cartpole-swingup", from_pixels=from_pixels, image_size=SIZE, episode_length=40)
    gymnasium_check_env(env, skip_render_check=False)  # includes reset(seed) determinism
    sb3_check_env(env)


def test_reset_stack_is_first_frame_repeated_and_newest_frame_is_a_fresh_render():
    env = make_env("reacher-easy", image_size=SIZE, frame_stack=3, episode_length=40, seed=1)
    obs, _ = env.reset()
    first = env.physics.render(SIZE, SIZE, camera_id=0).transpose(2, 0, 1)
    for k in range(3):
        np.testing.assert_array_equal(obs[3 * k : 3 * k + 3], first)
    previous = obs
    for action in _rollout_actions(3, 2, seed=0):
        obs, *_ = env.step(action)
        fresh = env.physics.render(SIZE, SIZE, camera_id=0).transpose(2, 0, 1)
        np.testing.assert_array_equal(obs[-3:], fresh)
        np.testing.assert_array_equal(obs[:-3], previous[3:])  # the stack shifts by one frame
        previous = obs
    assert not np.array_equal(obs[-3:], first)  # the arm moved


def test_action_repeat_sums_rewards_of_the_unrepeated_env():
    repeat = 4
    repeated = make_env("cartpole-swingup", from_pixels=False, action_repeat=repeat, episode_length=40, seed=5)
    single = make_env("cartpole-swingup", from_pixels=False, action_repeat=1, episode_length=40, seed=5)
    obs_r, _ = repeated.reset()
    obs_s, _ = single.reset()
    np.testing.assert_array_equal(obs_r, obs_s)
    for action in _rollout_actions(10, 1, seed=2):
        obs_r, reward_r, *_ = repeated.step(action)
        rewards = []
        for _ in range(repeat):
            obs_s, reward_s, *_ = single.step(action)
            rewards.append(reward_s)
        assert reward_r == pytest.approx(sum(rewards), rel=1e-12, abs=1e-12)
        assert reward_r > 0.0  # cartpole-swingup has a dense reward, so the check is not 0 == 0
        np.testing.assert_array_equal(obs_r, obs_s)


def test_time_limit_truncates_and_never_terminates():
    env = make_env("cartpole-swingup", from_pixels=False, action_repeat=8, episode_length=40, seed=0)
    env.reset()
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(agent_steps(40, 8))]
    assert flags == [(False, False)] * 4 + [(False, True)]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())
    env.reset()
    assert env.step(env.action_space.sample())[3] is False  # a fresh episode after reset


def test_action_repeat_stops_at_the_time_limit_counted_in_env_steps():
    env = make_env("cartpole-swingup", from_pixels=False, action_repeat=2, episode_length=6, seed=0)
    env.reset()
    infos = [env.step(np.zeros(1, np.float32))[4]["env_steps"] for _ in range(3)]
    assert infos == [2, 4, 6]


class _TerminatesOnSecondStep:
    """Delegates to a dm_control env, but its 2nd step ends the episode with discount 0."""

    def __init__(self, dmc):
        self._dmc, self.steps = dmc, 0

    def __getattr__(self, name):
        return getattr(self._dmc, name)

    def step(self, action):
        self.steps += 1
        time_step = self._dmc.step(action)
        if self.steps == 2:
            time_step = time_step._replace(step_type=dm_env.StepType.LAST, discount=0.0)
        return time_step


def test_termination_with_zero_discount_is_reported_and_stops_the_repeat():
    env = make_env("cartpole-swingup", from_pixels=False, action_repeat=4, seed=0)
    reference = make_env("cartpole-swingup", from_pixels=False, action_repeat=1, seed=0)
    env.reset()
    reference.reset()
    env._dmc = _TerminatesOnSecondStep(env._dmc)  # no suite task terminates by itself
    action = np.full(1, 0.3, np.float32)
    _, reward, terminated, truncated, info = env.step(action)
    expected = sum(reference.step(action)[1] for _ in range(2))
    assert (terminated, truncated, info["env_steps"]) == (True, False, 2)  # the repeat stopped after 2
    assert reward == pytest.approx(expected, rel=1e-12)


def test_seeding_is_deterministic_and_reset_seed_matches_a_new_env():
    def rollout(env: gym.Env, reset_seed: int | None) -> list[np.ndarray]:
        obs, _ = env.reset(seed=reset_seed)
        observations = [obs]
        for action in _rollout_actions(3, 1, seed=9):
            observations.append(env.step(action)[0])
        return observations

    kwargs = dict(image_size=SIZE, episode_length=40)
    first = rollout(make_env("cartpole-swingup", seed=3, **kwargs), None)
    second = rollout(make_env("cartpole-swingup", seed=3, **kwargs), None)
    reseeded_env = make_env("cartpole-swingup", seed=11, **kwargs)
    other = rollout(reseeded_env, None)  # seed 11
    reseeded = rollout(reseeded_env, 3)
    for a, b, c in zip(first, second, reseeded):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(first[0], other[0])


def test_action_space_is_seeded():
    a = make_env("cartpole-swingup", from_pixels=False, seed=7).action_space.sample()
    b = make_env("cartpole-swingup", from_pixels=False, seed=7).action_space.sample()
    np.testing.assert_array_equal(a, b)


def test_state_variant_is_the_flattened_observation_dict():
    env = make_env("cartpole-swingup", from_pixels=False, seed=0)
    obs, _ = env.reset()
    assert env.observation_space.shape == (5,) and obs.dtype == np.float32  # position 3 + velocity 2
    physics = env.physics
    expected = np.concatenate([physics.bounded_position(), physics.velocity()]).astype(np.float32)
    np.testing.assert_allclose(obs, expected, rtol=1e-6)


def test_actions_are_mapped_onto_the_task_bounds():
    env = make_env("quadruped-walk", from_pixels=False, seed=0)
    assert env.camera_id == 2  # quadruped is filmed from camera 2
    env.reset()
    env.step(np.ones(12, np.float32))
    high = env.physics.model.actuator_ctrlrange[:, 1]
    np.testing.assert_allclose(env.physics.data.ctrl, high)
    assert high.max() > 1.0  # quadruped bounds are not [-1, 1], so the mapping is exercised
    env.reset()
    env.step(np.full(12, -5.0, np.float32))  # clipped to -1 first
    np.testing.assert_allclose(env.physics.data.ctrl, env.physics.model.actuator_ctrlrange[:, 0])


def test_presets_set_the_default_action_repeat():
    assert make_env("cartpole-swingup", from_pixels=False).action_repeat == 8
    assert make_env("ball_in_cup-catch", from_pixels=False).action_repeat == 4
    assert make_env("cartpole-balance", from_pixels=False).action_repeat == 1  # no preset
    assert make_env("cartpole-swingup", from_pixels=False, action_repeat=2).action_repeat == 2
    assert {k: p.action_repeat for k, p in PLANET_PRESETS.items()} == {
        "finger-spin": 2,
        "cartpole-swingup": 8,
        "reacher-easy": 4,
        "cheetah-run": 4,
        "walker-walk": 2,
        "ball_in_cup-catch": 4,
    }


@pytest.mark.parametrize("bad", ["cheetah-fly", "foo-bar", "cheetah"])
def test_unknown_names_list_the_valid_ones(bad):
    with pytest.raises(ValueError, match="cartpole-swingup") as info:
        make_env(bad)
    assert repr(bad) in str(info.value)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="multiple of action_repeat"):
        make_env("cartpole-swingup", from_pixels=False, action_repeat=3, episode_length=1000)
    with pytest.raises(ValueError, match="frame_stack"):
        make_env("cartpole-swingup", frame_stack=0)
    with pytest.raises(ValueError, match="camera_id 9"):
        make_env("cartpole-swingup", camera_id=9)
    env = make_env("cartpole-swingup", from_pixels=False)
    env.reset()
    with pytest.raises(ValueError, match="action shape"):
        env.step(np.zeros(2))


def test_domain_and_task_split_at_the_first_hyphen():
    assert parse_env_id("ball_in_cup-catch") == ("ball_in_cup", "catch")
    assert parse_env_id("cartpole-swingup_sparse") == ("cartpole", "swingup_sparse")


def test_step_conversion_helpers():
    assert agent_steps(100_000, 8) == 12_500  # the CURL paper's "100K steps" on cartpole
    assert agent_steps(100_000, 4) == 25_000
    assert agent_steps(10, 4) == 3  # rounded up: the budget is covered
    assert env_steps(12_500, 8) == 100_000
    with pytest.raises(ValueError):
        agent_steps(10, 0)


def test_registered_gymnasium_ids():
    register_envs()
    register_envs()  # idempotent
    env = gym.make("curl_agents/cartpole-swingup-v0", image_size=SIZE, episode_length=16)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9, SIZE, SIZE)
    state_env = gym.make("curl_agents/ball_in_cup-catch-state-v0")
    assert state_env.reset(seed=0)[0].shape == (8,)


# Imports curl_agents.envs without the package __init__ (which loads torch and SB3) to stay fast.
_BACKEND_SCRIPT = """
import sys, types
package = types.ModuleType("curl_agents")
package.__path__ = [sys.argv[1]]
sys.modules["curl_agents"] = package
from curl_agents.envs import make_env
try:
    make_env("cartpole-swingup", image_size=8)
except RuntimeError as err:
    print("RUNTIME_ERROR", err)
"""


@pytest.mark.parametrize("backend", ["", "bogus"])
def test_missing_render_backend_explains_mujoco_gl(backend):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MUJOCO_GL"] = backend
    result = subprocess.run(
        [sys.executable, "-c", _BACKEND_SCRIPT, str(Path(__file__).resolve().parents[1] / "curl_agents")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "RUNTIME_ERROR" in result.stdout, result.stderr[-2000:]
    assert "MUJOCO_GL=egl" in result.stdout and "osmesa" in result.stdout


def test_unset_render_backend_without_display_defaults_to_egl():
    """``import curl_agents`` then ``make_env`` on a headless machine with MUJOCO_GL unset renders (via EGL)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")
    }
    script = (
        "import os, curl_agents\n"
        "obs, _ = curl_agents.make_env('cartpole-swingup', image_size=8, seed=0).reset()\n"
        "print('OK', os.environ['MUJOCO_GL'], obs.shape)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "OK egl (9, 8, 8)" in result.stdout, result.stderr[-2000:]


def test_static_task_list_is_the_installed_suites():
    import torchvision  # noqa: F401  (the torch side before dm_control)
    from dm_control import suite

    assert SUITE_TASKS == tuple(suite.ALL_TASKS)
    expected = [f"{domain}-{task}" for domain, task in suite.ALL_TASKS if domain != "lqr"]
    assert valid_task_names() == expected
    registered = {key for key in gym.registry if key.startswith("curl_agents/")}
    assert registered == {f"curl_agents/{name}-v0" for name in expected} | {
        f"curl_agents/{name}-state-v0" for name in expected
    }


def _run_python(script: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, timeout=180
    )


def test_import_curl_agents_loads_neither_dm_control_nor_mujoco_nor_opengl():
    script = (
        "import sys\n"
        "import curl_agents, gymnasium\n"
        "print('LOADED', sorted(m for m in ('dm_control', 'mujoco', 'OpenGL') if m in sys.modules))\n"
        "print('REGISTERED', 'curl_agents/cheetah-run-v0' in gymnasium.registry)\n"
    )
    result = _run_python(script)
    assert "LOADED []" in result.stdout, result.stdout + result.stderr[-2000:]
    assert "REGISTERED True" in result.stdout


# Records the order in which modules are first imported, then builds an env through curl_agents.envs alone
# (the package __init__, which loads torch, is bypassed).
_ORDER_SCRIPT = """
import sys, types
order = []
class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name in ("torchvision", "triton", "dm_control") and name not in order:
            order.append(name)
sys.meta_path.insert(0, Recorder())
package = types.ModuleType("curl_agents")
package.__path__ = [sys.argv[1]]
sys.modules["curl_agents"] = package
from curl_agents.envs import make_env
print("AFTER_IMPORT", order)
make_env("cartpole-swingup", image_size=8).reset()
print("AFTER_BUILD", order)
"""


def test_building_an_env_imports_torchvision_before_dm_control():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", _ORDER_SCRIPT, str(root / "curl_agents")],
        env={**os.environ, "MUJOCO_GL": "egl"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "AFTER_IMPORT []" in result.stdout, result.stdout + result.stderr[-2000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("AFTER_BUILD"))
    order = ast.literal_eval(line.removeprefix("AFTER_BUILD "))
    assert "dm_control" in order and "torchvision" in order
    assert order.index("torchvision") < order.index("dm_control")
    if "triton" in order:  # installed with CUDA builds of torch
        assert order.index("triton") < order.index("dm_control")
