"""Evaluation, logging and video helpers for the agents, plus SB3 callbacks built on them.

* :func:`evaluate` runs deterministic episodes (mean action, center-cropped observations: the
  policy crops inside ``predict``) on a separate env, reseeded per episode so the result depends
  only on the weights and the seeds. With ``record=True`` it keeps the frames of the first episode,
  rendered by ``render`` when given (e.g. the task camera at a viewable size) or else taken from the
  observation.
* :class:`EvalCSV` appends one row per evaluation to ``eval.csv`` through
  :class:`ssl_shared.run_dir.CsvLog` (each row reaches the file at once; a resumed run truncates the
  rows past its checkpoint); :func:`plot_learning_curve` draws it with the x axis in thousands
  (``4K``) or millions; :func:`save_gif` writes a video with Pillow (no imageio needed). Figures and
  videos are written atomically (:func:`ssl_shared.run_dir.atomic_write_bytes`).
* :func:`env_step_tensorboard_logger`: an SB3 logger writing TensorBoard scalars against env steps; on
  resume it purges the events a killed run wrote after its checkpoint (``purge_env_step``).
* SB3 callbacks for the Python API: :class:`EvalCSVCallback` (evaluate every N agent steps, CSV +
  logger scalars) and :class:`EnvStepProgressBar` (tqdm in env steps).

NaN/inf: the algorithms raise :class:`ssl_shared.errors.NonFiniteLossError` naming the loss and the
step inside ``train()``; the train command exits with code 3 and keeps the last good checkpoint.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from tqdm import tqdm

from ssl_shared.run_dir import CsvLog, atomic_write_bytes

EVAL_FIELDS = [
    "env_step",
    "agent_step",
    "mean_return",
    "std_return",
    "min_return",
    "max_return",
    "episodes",
    "wall_time_s",
    "note",
]
_INT_FIELDS = ("env_step", "agent_step", "episodes")
_TEXT_FIELDS = ("note",)


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
    model: BaseAlgorithm,
    env: gym.Env,
    n_episodes: int,
    base_seed: int,
    eval_index: int,
    record: bool = False,
    render: Callable[[], np.ndarray] | None = None,
) -> EvalResult:
    """Run ``n_episodes`` deterministic episodes; episode ``i`` starts from ``reset(seed=f(base, index, i))``.

    ``record``: keep the first episode's frames, from ``render()`` (an ``(H, W, 3)`` uint8 image of the
    env's current state) when given, else the newest frame of each observation.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    returns: list[float] = []
    frames: list[np.ndarray] = []

    def frame(obs: np.ndarray) -> np.ndarray:
        return np.asarray(render()) if render is not None else _frame_of(env, obs)

    for episode in range(n_episodes):
        obs, _ = env.reset(seed=episode_seed(base_seed, eval_index, episode))
        keep = record and episode == 0
        if keep:
            frames.append(frame(obs))
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
            if keep:
                frames.append(frame(obs))
        returns.append(total)
    return EvalResult(returns, frames)


class EvalCSV:
    """``eval.csv``: one row per evaluation with the columns of ``EVAL_FIELDS`` (a :class:`CsvLog`).

    ``note`` is empty except where something about the run changed at that evaluation (e.g. a resume
    with an empty replay buffer).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.log = CsvLog(self.path, step_key="env_step")

    def append(
        self, env_step: int, agent_step: int, result: EvalResult, wall_time_s: float, note: str = ""
    ) -> dict[str, Any]:
        row = {
            "env_step": env_step,
            "agent_step": agent_step,
            "mean_return": round(result.mean, 3),
            "std_return": round(result.std, 3),
            "min_return": round(float(np.min(result.returns)), 3),
            "max_return": round(float(np.max(result.returns)), 3),
            "episodes": len(result.returns),
            "wall_time_s": round(wall_time_s, 1),
            "note": note,
        }
        self.log.append(row)
        return row

    def rows(self) -> list[dict[str, Any]]:
        """Rows with numbers as ``float`` (``note`` stays text; files without it read as before)."""
        return [
            {k: (v if k in _TEXT_FIELDS else float(v)) for k, v in row.items() if v is not None}
            for row in self.log.rows()
        ]

    def truncate_after(self, env_step: int) -> None:
        """Drop rows past ``env_step`` and a torn last line (a resumed run re-evaluates them); a file
        written before the ``note`` column existed gets it."""
        self.log.truncate_after(env_step)
        header = self.log.fieldnames()
        if header is not None and header != EVAL_FIELDS:
            rows = self.log.rows()
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=EVAL_FIELDS, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            atomic_write_bytes(self.path, buffer.getvalue().encode())


def format_env_steps(value: float, _position: Any = None) -> str:
    """Axis label of an env-step count: ``0``, ``500``, ``4K``, ``12.5K``, ``1M``, ``1.5M``."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:g}M"
    if magnitude >= 1e3:
        return f"{value / 1e3:g}K"
    return f"{value:g}"


def plot_learning_curve(csv_path: str | Path, png_path: str | Path, title: str = "") -> None:
    """Mean (+- std over eval episodes) return against environment steps (x labels ``4K``, ``8K``...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = learning_curve_figure(EvalCSV(csv_path).rows(), title)
    if fig is None:
        return
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(png_path, buffer.getvalue())


def learning_curve_figure(rows: Sequence[dict[str, Any]], title: str = "") -> Any:
    """The matplotlib figure :func:`plot_learning_curve` writes (``None`` without rows)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    if not rows:
        return None
    x = np.array([r["env_step"] for r in rows])
    mean = np.array([r["mean_return"] for r in rows])
    std = np.array([r["std_return"] for r in rows])
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(x, mean, marker="o")
    ax.fill_between(x, mean - std, mean + std, alpha=0.25)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(format_env_steps))
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 25) -> None:
    """Write (H, W, 3) uint8 frames as an animated GIF with Pillow (atomically)."""
    from PIL import Image

    if not frames:
        raise ValueError("save_gif needs at least one frame")
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0
    )
    atomic_write_bytes(path, buffer.getvalue())


class EnvStepLogger(Logger):
    """An SB3 ``Logger`` whose x axis is environment steps.

    SB3 (``learn``'s log dumps) and the train command call ``dump(step)`` with agent steps
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


class _TensorBoardFormat(TensorBoardOutputFormat):
    """SB3's TensorBoard output with ``purge_step``: TensorBoard hides the events of earlier files at or
    after that step (what a killed run logged past its checkpoint, logged again by the resumed run)."""

    def __init__(self, folder: str, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def env_step_tensorboard_logger(
    folder: str | Path, action_repeat: int, purge_env_step: int | None = None
) -> EnvStepLogger:
    """TensorBoard output in ``folder`` with environment steps on the x axis (see :class:`EnvStepLogger`).

    ``purge_env_step``: a resumed run passes its checkpoint's env step + 1, so events written after the
    checkpoint by the interrupted run are dropped and the resumed run's replace them.
    """
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    return EnvStepLogger(folder, [_TensorBoardFormat(folder, purge_env_step)], action_repeat)


class EnvStepProgressBar(BaseCallback):
    """tqdm progress in environment steps (each agent step advances the bar by ``action_repeat``)."""

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
