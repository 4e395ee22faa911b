"""Evaluation, logging, video and checkpoint helpers for the agents, plus SB3 callbacks built on them.

* :func:`evaluate` runs deterministic episodes (mean action, center-cropped observations: the
  policy crops inside ``predict``) on a separate env, reseeded per episode so the result depends
  only on the weights and the seeds.
* :class:`EvalCSV` appends one row per evaluation to ``eval.csv``; :func:`plot_learning_curve`
  draws it; :func:`save_gif` writes a video with Pillow (no imageio needed).
* :func:`atomic_write_dir` / :func:`atomic_write_bytes`: write to a temporary path, then
  ``os.replace``, so a crash never leaves a half-written checkpoint.
* :func:`env_step_tensorboard_logger`: an SB3 logger writing TensorBoard scalars against ENV steps.
* SB3 callbacks for the Python API: :class:`EvalCSVCallback` (evaluate every N agent steps, CSV +
  logger scalars) and :class:`EnvStepProgressBar` (tqdm in ENV steps).

NaN/inf: the algorithms raise ``RuntimeError`` naming the loss and the step inside ``train()``;
the train command catches it and keeps the last good checkpoint (none is written after a failure).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, make_output_format
from tqdm import tqdm

EVAL_FIELDS = [
    "env_step",
    "agent_step",
    "mean_return",
    "std_return",
    "min_return",
    "max_return",
    "episodes",
    "wall_time_s",
]


@dataclass
class EvalResult:
    returns: list[float]
    frames: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8, first episode only

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


def episode_seed(base_seed: int, *keys: int) -> int:
    """A 31-bit seed determined by ``(base_seed, *keys)`` (independent streams per episode)."""
    return int(np.random.SeedSequence([int(base_seed), *map(int, keys)]).generate_state(1)[0] & 0x7FFFFFFF)


def _frame_of(env: gym.Env, obs: np.ndarray) -> np.ndarray:
    """The newest frame: the last 3 channels of a (3k, H, W) pixel observation, else ``env.render()``."""
    if obs.ndim == 3 and obs.dtype == np.uint8:
        return np.ascontiguousarray(obs[-3:].transpose(1, 2, 0))
    return np.asarray(env.render())


def evaluate(
    model: BaseAlgorithm, env: gym.Env, n_episodes: int, base_seed: int, eval_index: int, record: bool = False
) -> EvalResult:
    """Run ``n_episodes`` deterministic episodes; episode ``i`` starts from ``reset(seed=f(base, index, i))``."""
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    returns: list[float] = []
    frames: list[np.ndarray] = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=episode_seed(base_seed, eval_index, episode))
        keep = record and episode == 0
        if keep:
            frames.append(_frame_of(env, obs))
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
            if keep:
                frames.append(_frame_of(env, obs))
        returns.append(total)
    return EvalResult(returns, frames)


class EvalCSV:
    """Append-only ``eval.csv`` with the columns of ``EVAL_FIELDS`` (header written once)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, env_step: int, agent_step: int, result: EvalResult, wall_time_s: float) -> dict[str, Any]:
        row = {
            "env_step": env_step,
            "agent_step": agent_step,
            "mean_return": round(result.mean, 3),
            "std_return": round(result.std, 3),
            "min_return": round(float(np.min(result.returns)), 3),
            "max_return": round(float(np.max(result.returns)), 3),
            "episodes": len(result.returns),
            "wall_time_s": round(wall_time_s, 1),
        }
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        return row

    def rows(self) -> list[dict[str, float]]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def truncate_after(self, env_step: int) -> None:
        """Drop rows past ``env_step`` (a resumed run re-evaluates them)."""
        rows = [r for r in self.rows() if r["env_step"] <= env_step]
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
            writer.writeheader()
            for r in rows:
                writer.writerow(
                    {k: (int(v) if k in ("env_step", "agent_step", "episodes") else v) for k, v in r.items()}
                )
        os.replace(tmp, self.path)


def plot_learning_curve(csv_path: str | Path, png_path: str | Path, title: str = "") -> None:
    """Mean (+- std over eval episodes) return against environment steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = EvalCSV(csv_path).rows()
    if not rows:
        return
    x = np.array([r["env_step"] for r in rows])
    mean = np.array([r["mean_return"] for r in rows])
    std = np.array([r["std_return"] for r in rows])
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(x, mean, marker="o")
    ax.fill_between(x, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = Path(str(png_path) + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png_path)


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 25) -> None:
    """Write (H, W, 3) uint8 frames as an animated GIF with Pillow."""
    from PIL import Image

    if not frames:
        raise ValueError("save_gif needs at least one frame")
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    tmp = Path(str(path) + ".tmp.gif")
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    os.replace(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def atomic_write_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``path`` (else it is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


class EnvStepLogger(Logger):
    """An SB3 ``Logger`` whose x axis is ENVIRONMENT steps.

    SB3 (``learn``'s log dumps) and the train command call ``dump(step)`` with AGENT steps
    (``model.num_timesteps``); this logger writes every scalar at ``step * action_repeat`` and adds
    the scalar ``time/agent_steps`` = ``step``.
    """

    def __init__(self, folder: str | None, output_formats: list[Any], action_repeat: int) -> None:
        super().__init__(folder, output_formats)
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        self.action_repeat = int(action_repeat)

    def dump(self, step: int = 0) -> None:
        self.record("time/agent_steps", step)
        super().dump(step * self.action_repeat)


def env_step_tensorboard_logger(folder: str | Path, action_repeat: int) -> EnvStepLogger:
    """TensorBoard output in ``folder`` with environment steps on the x axis (see :class:`EnvStepLogger`)."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    return EnvStepLogger(folder, [make_output_format("tensorboard", folder)], action_repeat)


class EnvStepProgressBar(BaseCallback):
    """tqdm progress in ENVIRONMENT steps (each agent step advances the bar by ``action_repeat``)."""

    def __init__(self, bar: tqdm, action_repeat: int) -> None:
        super().__init__()
        self.bar = bar
        self.action_repeat = action_repeat

    def _on_step(self) -> bool:
        self.bar.update(self.action_repeat * self.training_env.num_envs)
        return True


class EvalCSVCallback(BaseCallback):
    """Evaluate every ``eval_every_agent_steps`` (and at the end) on ``eval_env``: CSV + ``eval/*`` scalars.

    For the Python API; the train command evaluates between its episode-aligned chunks instead.
    """

    def __init__(
        self,
        eval_env: gym.Env,
        csv_path: str | Path,
        eval_every_agent_steps: int,
        n_episodes: int = 10,
        action_repeat: int = 1,
        seed: int = 0,
        on_eval: Callable[[EvalResult], None] | None = None,
    ) -> None:
        super().__init__()
        if eval_every_agent_steps < 1:
            raise ValueError(f"eval_every_agent_steps must be >= 1, got {eval_every_agent_steps}")
        self.eval_env = eval_env
        self.csv = EvalCSV(csv_path)
        self.every = eval_every_agent_steps
        self.n_episodes = n_episodes
        self.action_repeat = action_repeat
        self.seed = seed
        self.on_eval = on_eval
        self.n_evals = 0
        self._start = time.time()

    def _evaluate(self) -> None:
        result = evaluate(self.model, self.eval_env, self.n_episodes, self.seed, self.n_evals)
        self.n_evals += 1
        steps = self.model.num_timesteps
        self.csv.append(steps * self.action_repeat, steps, result, time.time() - self._start)
        self.logger.record("eval/mean_return", result.mean)
        self.logger.record("eval/std_return", result.std)
        self.logger.record("eval/env_step", steps * self.action_repeat)
        if self.on_eval is not None:
            self.on_eval(result)

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            self._evaluate()
        return True
