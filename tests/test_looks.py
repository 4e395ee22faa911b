"""Looks of the DMC scenes (curl_agents.looks): only appearance changes, by the documented formulas."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the dm_control import

import zlib

import gymnasium as gym
import numpy as np
import pytest

from curl_agents.envs import make_env, register_envs
from curl_agents.looks import LOOK_NAMES, LOOKS, ColorShift, apply_look
from cut_translation import restyle

pytestmark = pytest.mark.render

SIZE = 48
GEOMETRY_FIELDS = ("geom_size", "geom_pos", "geom_quat", "geom_type", "body_pos", "body_mass", "cam_pos", "light_pos")


def _states(env, n: int, seed: int) -> list[np.ndarray]:
    """Physics states along a short random episode."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    states = []
    for _ in range(n):
        env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        states.append(env.unwrapped.physics.get_state().copy())
    return states


def _render(physics, state: np.ndarray, camera: int, segmentation: bool = False) -> np.ndarray:
    with physics.reset_context():
        physics.set_state(state)
    image = physics.render(SIZE, SIZE, camera_id=camera, segmentation=segmentation)
    return image[..., 0] if segmentation else image


@pytest.mark.parametrize("task", ["cartpole-swingup", "cheetah-run", "finger-spin", "ball_in_cup-catch"])
def test_every_look_keeps_geometry_and_changes_pixels(task: str) -> None:
    env = make_env(task, image_size=SIZE, episode_length=40, seed=0)
    base = env.unwrapped.physics
    states = _states(env, 2, seed=1)
    camera = env.unwrapped.camera_id
    pixel_change = {}
    for name in LOOK_NAMES:
        styled = base.copy(share_model=False)
        apply_look(styled, name)
        for field in GEOMETRY_FIELDS:
            assert np.array_equal(getattr(base.model, field), getattr(styled.model, field)), (name, field)
        diffs = []
        for state in states:
            seg_default = _render(base, state, camera, segmentation=True)
            seg_look = _render(styled, state, camera, segmentation=True)
            assert np.array_equal(seg_default, seg_look), name
            assert len(np.unique(seg_default)) >= 3  # floor, sky and bodies are in view
            rgb_default = _render(base, state, camera).astype(np.float64)
            diffs.append(np.abs(rgb_default - _render(styled, state, camera)).mean())
        pixel_change[name] = float(np.mean(diffs))
    assert pixel_change["default"] == 0.0
    assert pixel_change["restyled"] > 20.0  # of 255: a strong change of look
    # the colour shift grows with its strength
    assert 1.0 < pixel_change["color_shift_0.2"] < pixel_change["color_shift_0.5"] < pixel_change["color_shift_1.0"]


def test_color_shift_follows_its_formulas() -> None:
    env = make_env("cartpole-swingup", image_size=SIZE, episode_length=40, seed=0)
    base = env.unwrapped.physics
    shifted = base.copy(share_model=False)
    s, seed, spread = 0.5, 3, 0.5
    ColorShift(s, seed=seed, light_spread=spread).apply(shifted)
    a, b = base.model, shifted.model

    def colour(key: str) -> np.ndarray:  # the documented draw, written out
        return np.random.default_rng([seed, zlib.crc32(key.encode())]).uniform(0.0, 1.0, size=3)

    # an untextured material and its reward-highlight variant share one target colour
    for name in ("self", "self_default", "self_highlight"):
        i = a.name2id(name, "material")
        np.testing.assert_allclose(
            b.mat_rgba[i, :3], 0.5 * a.mat_rgba[i, :3] + 0.5 * colour("material:self"), rtol=1e-6
        )
        assert b.mat_rgba[i, 3] == a.mat_rgba[i, 3]  # alpha kept
    grid_material = a.name2id("grid", "material")
    np.testing.assert_array_equal(b.mat_rgba[grid_material], a.mat_rgba[grid_material])  # textured: kept
    # the floor texture: a gradient map between two colours keyed by brightness, then the same lerp
    tex = a.name2id("grid", "texture")
    h, w, c = int(a.tex_height[tex]), int(a.tex_width[tex]), int(a.tex_nchannel[tex])
    start = int(a.tex_adr[tex])
    before = a.tex_data[start : start + h * w * c].reshape(h, w, c)[..., :3].astype(np.float64)
    after = b.tex_data[start : start + h * w * c].reshape(h, w, c)[..., :3].astype(np.float64)
    brightness = before.mean(axis=-1)
    for row, col in ((0, 0), (h // 3, w // 5), (h - 1, w // 2)):
        weight = (brightness[row, col] - brightness.min()) / (brightness.max() - brightness.min())
        target = colour("texture:grid:dark") + weight * (colour("texture:grid:bright") - colour("texture:grid:dark"))
        expected = 0.5 * before[row, col] / 255.0 + 0.5 * target
        np.testing.assert_allclose(after[row, col] / 255.0, expected, atol=0.51 / 255.0)
    # lights: every channel times (1 - s) + s * factor, factor in [1 - spread, 1 + spread)
    light_name = a.id2name(0, "light")
    factor = 1.0 - spread + 2.0 * spread * colour(f"light:{light_name}")
    np.testing.assert_allclose(b.light_diffuse[0], a.light_diffuse[0] * (0.5 + 0.5 * factor), rtol=1e-6)
    # strength 0 changes nothing at all
    unchanged = base.copy(share_model=False)
    ColorShift(0.0, seed=seed).apply(unchanged)
    for field in ("tex_data", "mat_rgba", "geom_rgba", "light_diffuse", "light_ambient", "light_specular"):
        assert np.array_equal(getattr(a, field), getattr(unchanged.model, field)), field


def test_restyled_look_renders_like_the_dmc_restyle_benchmark() -> None:
    renderer = restyle.TaskRenderer("cheetah-run", restyle.Style(), seed=0)
    env = make_env("cheetah-run", image_size=64, episode_length=40, seed=0, look="restyled")
    for state in _states(env, 2, seed=4):
        expected = renderer.render(state, "B", 64, 0)
        np.testing.assert_array_equal(_render_at(env, state, 64), expected)
    assert LOOKS["restyled"] == restyle.Style()


def _render_at(env, state: np.ndarray, size: int) -> np.ndarray:
    physics = env.unwrapped.physics
    with physics.reset_context():
        physics.set_state(state)
    return physics.render(size, size, camera_id=0)


def test_make_env_and_gymnasium_record_the_look() -> None:
    env = make_env("cartpole-swingup", image_size=SIZE, episode_length=40, seed=0, look="color_shift_0.5")
    assert env.unwrapped.look == "color_shift_0.5"
    assert make_env("cartpole-swingup", from_pixels=False).unwrapped.look == "default"
    register_envs()
    made = gym.make("curl_agents/cartpole-swingup-v0", image_size=SIZE, episode_length=16, look="restyled")
    assert made.spec.kwargs["look"] == "restyled" and made.unwrapped.look == "restyled"
    obs, _ = made.reset(seed=0)
    default = gym.make("curl_agents/cartpole-swingup-v0", image_size=SIZE, episode_length=16)
    assert not np.array_equal(obs, default.reset(seed=0)[0])  # same state, other colours
    with pytest.raises(ValueError, match="unknown look 'sepia'; allowed: default, restyled, color_shift_0.2"):
        make_env("cartpole-swingup", look="sepia")
