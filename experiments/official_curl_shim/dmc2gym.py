"""``dmc2gym.make`` for pixel observations, as the official CURL ``train.py`` calls it.

Behaviour of denisyarats/dmc2gym's pixel path that the official code relies on, re-implemented:

- ``suite.load(domain, task, task_kwargs={"random": seed})``;
- actions in ``Box(-1, 1)``, mapped affinely onto the task's bounds;
- ``frame_skip`` physics steps per agent step, rewards summed, stopping at the episode's last step;
- observation: ``physics.render(height, width, camera_id)`` channel-first ``uint8``;
- ``_max_episode_steps = ceil(episode_length / frame_skip)`` (dmc2gym registers a TimeLimit with it);
- the old gym API: ``reset() -> obs`` and ``step(a) -> (obs, reward, done, info)``.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from dm_control import suite


class DMCPixelEnv(gymnasium.Env):
    """One dm_control task with pixel observations and action repeat, old-gym API."""

    def __init__(
        self,
        domain_name: str,
        task_name: str,
        seed: int,
        height: int,
        width: int,
        camera_id: int,
        frame_skip: int,
        episode_length: int,
    ) -> None:
        self._env = suite.load(domain_name, task_name, task_kwargs={"random": seed})
        self._size, self._camera, self._frame_skip = (height, width), camera_id, frame_skip
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        self.observation_space = gymnasium.spaces.Box(0, 255, (3, height, width), np.uint8)
        self._max_episode_steps = -(-episode_length // frame_skip)
        self._elapsed = 0
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self.action_space.seed(seed)
        self.observation_space.seed(seed)

    def _render(self) -> np.ndarray:
        frame = self._env.physics.render(*self._size, camera_id=self._camera)
        return np.ascontiguousarray(frame.transpose(2, 0, 1))

    def reset(self) -> np.ndarray:  # type: ignore[override]  (old gym API)
        self._env.reset()
        self._elapsed = 0
        return self._render()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, dict]:  # type: ignore[override]
        # as dmc2gym: the affine map in float64, then float32 (exact identity for bounds [-1, 1])
        unit = (np.asarray(action, np.float64) + 1.0) / 2.0
        physical = (self._low + unit * (self._high - self._low)).astype(np.float32)
        reward, done = 0.0, False
        for _ in range(self._frame_skip):
            time_step = self._env.step(physical)
            reward += time_step.reward or 0.0
            done = time_step.last()
            if done:
                break
        self._elapsed += 1
        return self._render(), reward, done or self._elapsed >= self._max_episode_steps, {}


def make(
    domain_name: str,
    task_name: str,
    seed: int = 1,
    visualize_reward: bool = False,
    from_pixels: bool = True,
    height: int = 84,
    width: int = 84,
    camera_id: int = 0,
    frame_skip: int = 1,
    episode_length: int = 1000,
) -> DMCPixelEnv:
    if not from_pixels or visualize_reward:
        raise ValueError(
            f"only from_pixels=True, visualize_reward=False is provided (got from_pixels="
            f"{from_pixels}, visualize_reward={visualize_reward})"
        )
    return DMCPixelEnv(domain_name, task_name, seed, height, width, camera_id, frame_skip, episode_length)
