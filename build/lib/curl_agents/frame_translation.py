"""Put an image-to-image translator between a pixel env and a trained agent, one new frame at a time.

A pixel env of this package emits stacks ``(3k, H, W)`` uint8 of the last ``k`` rendered frames, newest
last, the reset stack holding the first frame ``k`` times. To show an agent translated observations
without translating a frame twice, the wrappers here keep their own stack: each step they take the NEWEST
frame of the env's observation (its last 3 channels), translate it once and push it onto their stack, so
the observation is the stack of the last ``k`` translated frames. After a reset the stack is the first
translated frame ``k`` times, as the env's is. Nothing else changes: rewards, flags, infos, actions.

* :class:`TranslateFrames`: a ``gymnasium.Wrapper`` for one env (``model.predict``, hand-written loops).
* :class:`VecTranslateFrames`: an SB3 ``VecEnvWrapper``; the newest frames of all envs are translated in
  one batch, and an env that auto-reset gets its terminal observation built from translated frames too
  (``infos[i]["terminal_observation"]``). SB3's ``evaluate_policy`` takes either.
* :class:`ModuleFrameTranslator`: the translator, from any ``torch.nn.Module`` that maps ``(N, 3, H, W)``
  float images in [-1, 1] to the same shape and range (the convention of CUT/CycleGAN generators). It runs
  in eval mode under ``torch.no_grad()`` on the CPU or a GPU, ``uint8 -> x / 127.5 - 1 -> module ->
  round((y + 1) * 127.5) -> uint8``, and counts frames and seconds (:class:`Latency`).

A translator is any callable ``(N, 3, H, W) uint8 -> (N, 3, H, W) uint8``; the wrappers time the env's
own ``step`` beside it, so the cost of translation can be read against the cost of simulation and
rendering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

FrameTranslator = Callable[[np.ndarray], np.ndarray]
FRAME_CHANNELS = 3


@dataclass
class Latency:
    """Calls counted (``count``: frames or steps) and the wall seconds they took."""

    count: int = 0
    seconds: float = 0.0

    def add(self, count: int, seconds: float) -> None:
        self.count += int(count)
        self.seconds += float(seconds)

    @property
    def ms_per_item(self) -> float:
        return 1000.0 * self.seconds / self.count if self.count else float("nan")


class ModuleFrameTranslator:
    """``(N, 3, H, W)`` uint8 frames through ``module`` (float in [-1, 1] in and out), in eval mode, no grad.

    The module is put in eval mode and moved to ``device`` here; ``latency`` counts translated frames and
    their wall time (a GPU result is copied back to the host before the clock stops).
    """

    def __init__(self, module: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.latency = Latency()

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        start = time.perf_counter()
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).float().div_(127.5).sub_(1.0)
        y = self.module(x)
        if y.shape != x.shape:
            raise ValueError(f"the translator returned shape {tuple(y.shape)} for input {tuple(x.shape)}")
        out = y.clamp(-1.0, 1.0).add_(1.0).mul_(127.5).round_().to(torch.uint8).cpu().numpy()
        self.latency.add(len(frames), time.perf_counter() - start)
        return out


def check_frames(frames: np.ndarray) -> np.ndarray:
    """``frames`` if it is ``(N, 3, H, W)`` uint8, else ``ValueError`` naming what it is."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1] != FRAME_CHANNELS:
        raise ValueError(f"frames must be (N, 3, H, W) uint8, got {frames.shape} {frames.dtype}")
    return frames


def _stack_size(space: gym.spaces.Space) -> int:
    """``k`` of a ``Box(0, 255, (3k, H, W), uint8)`` observation space; ``ValueError`` otherwise."""
    shape = getattr(space, "shape", None)
    if (
        not isinstance(space, gym.spaces.Box)
        or space.dtype != np.uint8
        or shape is None
        or len(shape) != 3
        or shape[0] % FRAME_CHANNELS
    ):
        raise ValueError(f"frame translation needs uint8 (3k, H, W) frame-stack observations, got {space}")
    return shape[0] // FRAME_CHANNELS


def _translate(translator: FrameTranslator, frames: np.ndarray) -> np.ndarray:
    out = translator(frames)
    if not isinstance(out, np.ndarray) or out.shape != frames.shape or out.dtype != np.uint8:
        got = f"{getattr(out, 'shape', None)} {getattr(out, 'dtype', type(out).__name__)}"
        raise ValueError(f"the translator must return {frames.shape} uint8, got {got}")
    return out


def _check_reset_stack(obs: np.ndarray, k: int) -> None:
    """The env's reset stack must be its first frame k times (the layout this wrapper reproduces)."""
    newest = obs[-FRAME_CHANNELS:]
    for i in range(k - 1):
        if not np.array_equal(obs[FRAME_CHANNELS * i : FRAME_CHANNELS * (i + 1)], newest):
            raise ValueError("the env's reset observation is not its first frame repeated; cannot rebuild its stack")


class TranslateFrames(gym.Wrapper):
    """Observations = the last ``k`` frames of ``env``, each translated once by ``translator`` (module docstring).

    ``step_latency`` times the wrapped env's ``step`` (simulation, action repeat, rendering); the
    translator's own time is ``translator.latency`` when it has one (:class:`ModuleFrameTranslator`).
    """

    def __init__(self, env: gym.Env, translator: FrameTranslator) -> None:
        super().__init__(env)
        self.k = _stack_size(env.observation_space)
        self.translator = translator
        self.step_latency = Latency()
        self._stack: np.ndarray | None = None

    def _push(self, frame: np.ndarray) -> np.ndarray:
        assert self._stack is not None
        self._stack = np.concatenate([self._stack[FRAME_CHANNELS:], frame], axis=0)
        return self._stack.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        _check_reset_stack(obs, self.k)
        first = _translate(self.translator, obs[None, -FRAME_CHANNELS:])[0]
        self._stack = np.concatenate([first] * self.k, axis=0)
        return self._stack.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._stack is None:
            raise RuntimeError("step() before reset()")
        start = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.step_latency.add(1, time.perf_counter() - start)
        frame = _translate(self.translator, obs[None, -FRAME_CHANNELS:])[0]
        return self._push(frame), reward, terminated, truncated, info


class VecTranslateFrames(VecEnvWrapper):
    """:class:`TranslateFrames` for an SB3 ``VecEnv``: one translator call per step for all envs.

    An env that ended its episode in a step was reset by the VecEnv: its returned observation is the new
    episode's first stack, its last observation is in ``infos[i]["terminal_observation"]``. Both are
    rebuilt from translated frames (the terminal frame and the new first frame join that step's batch).
    """

    def __init__(self, venv: VecEnv, translator: FrameTranslator) -> None:
        super().__init__(venv)
        self.k = _stack_size(venv.observation_space)
        self.translator = translator
        self.step_latency = Latency()
        self._stacks: np.ndarray | None = None  # (n_envs, 3k, H, W)

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        for row in obs:
            _check_reset_stack(row, self.k)
        first = _translate(self.translator, obs[:, -FRAME_CHANNELS:])
        self._stacks = np.concatenate([first] * self.k, axis=1)
        return self._stacks.copy()

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        if self._stacks is None:
            raise RuntimeError("step() before reset()")
        start = time.perf_counter()
        obs, rewards, dones, infos = self.venv.step_wait()
        self.step_latency.add(self.num_envs, time.perf_counter() - start)
        ended = [int(i) for i in np.flatnonzero(dones)]
        with_terminal = [i for i in ended if infos[i].get("terminal_observation") is not None]
        terminal = [np.asarray(infos[i]["terminal_observation"])[None, -FRAME_CHANNELS:] for i in with_terminal]
        translated = _translate(self.translator, np.concatenate([obs[:, -FRAME_CHANNELS:], *terminal], axis=0))
        newest, terminal_frames = translated[: self.num_envs], translated[self.num_envs :]
        for i, frame in zip(with_terminal, terminal_frames):
            infos[i]["terminal_observation"] = np.concatenate([self._stacks[i, FRAME_CHANNELS:], frame], axis=0)
        self._stacks = np.concatenate([self._stacks[:, FRAME_CHANNELS:], newest], axis=1)
        for i in ended:  # auto-reset: the new episode's stack is its first frame k times
            self._stacks[i] = np.concatenate([newest[i]] * self.k, axis=0)
        return self._stacks.copy(), rewards, dones, infos
