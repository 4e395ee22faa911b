"""``python -m curl_agents.train``: train CURL / RAD / DrQ / SAC-AE / pixel SAC / state SAC on a DMC task.

    python -m curl_agents.train --env cheetah-run --algo curl --env-steps 100000 --seed 1 --out runs/cheetah_curl_s1
    python -m curl_agents.train --resume --out runs/cheetah_curl_s1        # continue it after a stop

The flags are the fields of :class:`curl_agents.run_config.RunConfig` (``--help`` lists them; unset
ones resolve to the task's or the algorithm's own values, see that module). Budgets and intervals are in
environment steps (``--env-steps 100000`` on cartpole-swingup, action repeat 8, is 12,500 agent steps).
Evaluation and checkpoint intervals are multiples of the episode length, so they fall on episode
boundaries: :class:`Trainer` drives the run in one-episode ``learn`` chunks and writes everything
between them.

Run folder (``--out``)::

    config.json         resolved settings, "sources" (where each came from), resumes with an empty replay
    launches.json       one record per launch: command, git commit, versions, detected hardware
    eval.csv            env_step, agent_step, returns, wall time, note; every eval_every_env_steps, at 0 and at the end
    tb/                 TensorBoard scalars against env steps (time/agent_steps holds the agent step)
    checkpoints/        step-<env step>/ {model.zip, state.pt, replay.pkl, manifest.json} + latest.txt
    learning_curve.png, final_eval.gif (first final evaluation episode, rendered at video_size),
    final_model.zip, FAILED.txt (only after a non-finite loss)
    summary.json        written last, after the final checkpoint: the run reached --env-steps

Checkpoints (:class:`ssl_shared.run_dir.CheckpointStore`) are written to a temporary folder that is
renamed into place before the pointer ``latest.txt`` moves, so a run killed at any instant keeps a
complete checkpoint; the next start removes what the killed write left. One is written after the
initial evaluation (env step 0), every ``checkpoint_every_env_steps`` and at the end (after the final
evaluation and outputs, before ``summary.json``; a run stopped in between is finished by ``--resume``,
which then only writes ``summary.json`` from the final ``eval.csv`` row).

``--resume`` continues the run in ``--out`` from its latest checkpoint: weights, optimizers,
temperature, step counters, the RNG states (torch, numpy, python, augmentation, action sampling) and
the replay buffer, which is saved with every checkpoint by default (its size on disk is printed at
start). Training-env episodes are seeded by episode index, so a resumed run ends exactly where an
uninterrupted one would: same weights, same ``eval.csv`` (truncated to the checkpoint, then
continued), TensorBoard events past the checkpoint purged. A finished run (``summary.json``) is
not resumed: ``--resume`` refuses it unless a larger ``--env-steps`` extends it (``summary.json`` is then
removed until the new end). A checkpoint without a replay buffer
(``--no-save-replay``) is resumed only with ``--resume-without-replay``, which starts an empty buffer
and collects ``init_agent_steps`` random-action agent steps again (a different run from then on; the
fact is written to ``config.json``, ``launches.json`` and the next ``eval.csv`` note).

Errors: bad input (flags, names, JSON options, an unusable ``--out``, a conflicting or impossible
``--resume``, a corrupt checkpoint) is reported on one line, naming the flag or file, with exit code 2,
before any env or model is built. A NaN/inf loss stops the run with the loss and the step named (exit
code 3, ``FAILED.txt``); the last good checkpoint is kept (nothing is written after the failure).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import shutil
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from curl_agents.run_config import (
    CHANGEABLE_ON_RESUME,
    PROG,
    RunConfig,
    RunPlan,
    algorithm_class,
    build_parser,
    is_pixel,
    legacy_to_current,
    model_kwargs,
    plan_from_args,
    resolve,
    resolve_runtime,
)
from ssl_shared.cli import command
from ssl_shared.errors import NonFiniteLossError, UserError
from ssl_shared.run_dir import (
    CheckpointStore,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_resume_config,
    prepare_run_dir,
)

EVAL_SEED_OFFSET = 10_000  # the eval env's seed is seed + this (its episodes never repeat training ones)

MODEL_FILE, STATE_FILE, REPLAY_FILE, MANIFEST_FILE = "model.zip", "state.pt", "replay.pkl", "manifest.json"
LEGACY_CHECKPOINT = "latest"  # checkpoints/latest/: the folder earlier versions replaced in place


# --------------------------------------------------------------------------------------- env + model
class ReseedEachEpisode(gym.Wrapper):
    """Seed episode ``i`` of the training env with ``episode_seed(seed, i)`` (the incoming seed is ignored).

    Initial states then depend only on the episode index, which a checkpoint stores, so a resumed
    run replays the same episodes as an uninterrupted one.
    """

    def __init__(self, env: gym.Env, seed: int, next_episode: int = 0) -> None:
        super().__init__(env)
        self.base_seed = seed
        self.next_episode = next_episode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        from curl_agents.callbacks import episode_seed

        episode, self.next_episode = self.next_episode, self.next_episode + 1
        return self.env.reset(seed=episode_seed(self.base_seed, 0, episode), options=options)


def make_task_env(cfg: RunConfig, seed: int) -> gym.Env:
    from curl_agents.envs import make_env

    pixels = is_pixel(cfg)
    return make_env(
        cfg.env,
        from_pixels=pixels,
        image_size=cfg.render_size if pixels else 84,
        action_repeat=cfg.action_repeat,
        frame_stack=cfg.frame_stack,
        seed=seed,
        episode_length=cfg.episode_env_steps,
        look=cfg.look,
    )


def make_train_vec_env(cfg: RunConfig, next_episode: int = 0) -> Any:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def thunk() -> gym.Env:
        return Monitor(ReseedEachEpisode(make_task_env(cfg, cfg.seed), cfg.seed, next_episode))

    return DummyVecEnv([thunk])


def build_model(cfg: RunConfig, env: Any) -> Any:
    policy = "CnnPolicy" if is_pixel(cfg) else "MlpPolicy"
    return algorithm_class(cfg)(policy, env, device=cfg.device, **model_kwargs(cfg))


# --------------------------------------------------------------------------------------- checkpoints
def _rng_state(model: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if hasattr(model, "aug_generator"):
        state["aug_generator"] = model.aug_generator.get_state()
    return state


def _restore_rng_state(model: Any, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "aug_generator" in state and hasattr(model, "aug_generator"):
        if state["aug_generator"].numel() == model.aug_generator.get_state().numel():  # same device type
            model.aug_generator.set_state(state["aug_generator"])


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`inspect_checkpoint` read from a checkpoint folder without building anything."""

    folder: Path
    agent_step: int
    loop: dict[str, Any]
    has_replay: bool


def _corrupt(path: Path, err: object) -> UserError:
    return UserError(
        f"--resume: checkpoint file {path} cannot be read ({err}); it is truncated or corrupt, so this run "
        "cannot continue; start a new run in another --out"
    )


def inspect_checkpoint(folder: Path) -> CheckpointInfo:
    """Check a checkpoint's files (sizes against its manifest, the zip's CRCs, the loop state) before resuming."""
    manifest_path = folder / MANIFEST_FILE
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as err:
            raise _corrupt(manifest_path, err) from err
        for name, size in manifest.items():
            path = folder / name
            actual = path.stat().st_size if path.exists() else None
            if actual != size:
                raise _corrupt(path, f"{actual} bytes, the checkpoint wrote {size}")
    model_path = folder / MODEL_FILE
    try:
        with zipfile.ZipFile(model_path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"bad CRC in {bad}")
            agent_step = int(json.loads(archive.read("data"))["num_timesteps"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise _corrupt(model_path, err) from err
    state_path = folder / STATE_FILE
    try:
        loop = torch.load(state_path, weights_only=False)["loop"]
    except Exception as err:  # torch.load: any unpickling failure means an unusable file
        raise _corrupt(state_path, err) from err
    return CheckpointInfo(folder, agent_step, dict(loop), (folder / REPLAY_FILE).exists())


def find_checkpoint(out: Path, store: CheckpointStore) -> Path:
    """The checkpoint ``--resume`` continues from: the store's latest, else an earlier version's
    ``checkpoints/latest/`` folder (raises :class:`UserError` when there is none)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a folder")
    latest = store.latest()
    if latest is not None:
        return latest
    legacy = store.root / LEGACY_CHECKPOINT
    if (legacy / MODEL_FILE).exists():
        return legacy
    raise UserError(f"--resume: no checkpoint in {out}; start a new run without --resume")


def adopt_legacy_checkpoint(store: CheckpointStore, info: CheckpointInfo, env_step: int) -> CheckpointInfo:
    """Move an earlier version's ``checkpoints/latest/`` into the store's layout (one rename + the pointer)."""
    if info.folder.name != LEGACY_CHECKPOINT:
        return info
    target = store.root / f"{CheckpointStore.PREFIX}{env_step:010d}"
    info.folder.rename(target)
    atomic_write_text(store.root / CheckpointStore.POINTER, target.name + "\n")
    return replace(info, folder=target)


def read_saved_config(out: Path) -> dict[str, Any]:
    path = out / "config.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise UserError(
            f"--resume: {path} is missing; it holds the run's settings, so the run cannot continue"
        ) from err
    except (OSError, ValueError) as err:
        raise UserError(f"--resume: {path} cannot be read ({err}); restore it or start a new run") from err
    if not isinstance(saved, dict):
        raise UserError(f"--resume: {path} does not hold a JSON object; restore it or start a new run")
    return saved


def finished_env_steps(out: Path) -> int | None:
    """The env steps a finished run reached (``summary.json``), or None when the run is not finished."""
    path = out / "summary.json"
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text())["env_steps"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"--resume: {path} cannot be read ({err}); restore it or start a new run") from err


def _remove_write_leftovers(out: Path) -> list[Path]:
    """Temporary files of atomic writes killed before their rename (``.NAME.XXXX.tmp``) in ``out``."""
    removed = []
    for path in out.iterdir() if out.is_dir() else []:
        if path.is_file() and path.name.startswith(".") and (path.name.endswith(".tmp") or ".write-test-" in path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def replay_checkpoint_bytes(buffer: Any, agent_steps: int, episode_agent_steps: int) -> int:
    """Size of the pickled replay buffer once ``agent_steps`` transitions were added (to a few hundred bytes).

    :class:`~curl_agents.replay.FrameReplayBuffer` pickles the frames it holds (one per agent step plus
    the first frame of each episode, at most ``frame_capacity``), its index arrays and its spaces;
    other buffers pickle their preallocated arrays.
    """
    import pickle

    from curl_agents.replay import FrameReplayBuffer

    spaces = len(pickle.dumps((buffer.observation_space, buffer.action_space)))
    if isinstance(buffer, FrameReplayBuffer):
        episodes = math.ceil(agent_steps / episode_agent_steps)
        frames = min(buffer.frame_capacity, agent_steps + episodes) * buffer.n_envs
        frame_bytes = int(np.prod(buffer.frame_shape))
        index_bytes = buffer.nbytes() - buffer.frames.numel() * buffer.frames.element_size()
        return frames * frame_bytes + index_bytes + spaces
    return sum(v.nbytes for v in vars(buffer).values() if isinstance(v, np.ndarray)) + spaces


def _megabytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


# --------------------------------------------------------------------------------------- the trainer
def _new_loop() -> dict[str, Any]:
    return {"next_episode": 0, "n_evals": 0, "wall_time_s": 0.0}


class Trainer:
    """One run in ``out``: :meth:`step` trains one episode, :meth:`evaluate` writes an ``eval.csv`` row,
    :meth:`save` a checkpoint, :meth:`fit` drives them to the budget; :meth:`new` / :meth:`resume` build it."""

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        model: Any,
        train_env: Any,
        loop: dict[str, Any],
        *,
        note: str = "",
        purge_env_step: int | None = None,
        progress: bool = True,
    ) -> None:
        from curl_agents.callbacks import EvalCSV, env_step_tensorboard_logger

        self.cfg, self.out, self.model, self.train_env, self.loop = cfg, out, model, train_env, loop
        self.repeat = cfg.action_repeat
        self.total_agent_steps = math.ceil(cfg.env_steps / self.repeat)
        self.episode_agent_steps = cfg.episode_env_steps // self.repeat
        self.store = CheckpointStore(out / "checkpoints")
        self.eval_csv = EvalCSV(out / "eval.csv")
        self.eval_seed = cfg.seed + EVAL_SEED_OFFSET
        self.eval_env = make_task_env(cfg, seed=self.eval_seed)
        self.progress = progress
        self._note = note
        self._start = time.time() - loop["wall_time_s"]
        model.set_logger(env_step_tensorboard_logger(out / "tb", self.repeat, purge_env_step=purge_env_step))

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def new(cls, cfg: RunConfig, out: Path, *, progress: bool = True) -> Trainer:
        """A fresh run (``out`` is prepared; stale logs of a run killed before its first checkpoint are dropped)."""
        (out / "eval.csv").unlink(missing_ok=True)
        shutil.rmtree(out / "tb", ignore_errors=True)
        env = make_train_vec_env(cfg)
        return cls(cfg, out, build_model(cfg, env), env, _new_loop(), progress=progress)

    @classmethod
    def resume(
        cls, cfg: RunConfig, out: Path, checkpoint: CheckpointInfo, *, fresh_replay: bool = False, progress: bool = True
    ) -> Trainer:
        """Continue from ``checkpoint``: weights, optimizers, counters, RNG states and (unless ``fresh_replay``,
        for a checkpoint without one) the replay buffer; ``eval.csv`` is truncated to the checkpoint."""
        folder, loop = checkpoint.folder, checkpoint.loop
        started = loop["next_episode"] > 0  # the step-0 checkpoint precedes the first reset
        env = make_train_vec_env(cfg, next_episode=loop["next_episode"] - 1 if started else 0)
        try:
            model = algorithm_class(cfg).load(folder / MODEL_FILE, env=env, device=cfg.device, force_reset=False)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise _corrupt(folder / MODEL_FILE, err) from err
        note = ""
        if checkpoint.has_replay:
            try:
                model.load_replay_buffer(folder / REPLAY_FILE)
            except Exception as err:  # unpickling a damaged file fails in many ways
                raise _corrupt(folder / REPLAY_FILE, err) from err
        elif model.num_timesteps > 0:  # (the step-0 checkpoint's buffer is empty anyway)
            if not fresh_replay:
                raise ValueError(f"{folder} has no replay buffer; resuming it needs fresh_replay=True")
            model.learning_starts = model.num_timesteps + cfg.init_agent_steps
            note = (
                f"replay restarted empty at env step {model.num_timesteps * cfg.action_repeat} "
                f"(--resume-without-replay): {cfg.init_agent_steps} random agent steps again"
            )
        saved_obs = model._last_obs
        if started:
            model._last_obs = env.reset()  # re-creates the episode the checkpoint was taken at (reset by index)
            if saved_obs is not None and not np.array_equal(saved_obs, model._last_obs):
                raise RuntimeError("--resume: the training env does not reproduce the checkpoint's observation")
        state = torch.load(folder / STATE_FILE, weights_only=False)
        _restore_rng_state(model, state["rng"])
        env_step = model.num_timesteps * cfg.action_repeat
        # TensorBoard: hide the events the interrupted run wrote after this checkpoint
        trainer = cls(cfg, out, model, env, dict(loop), note=note, purge_env_step=env_step + 1, progress=progress)
        trainer.eval_csv.truncate_after(env_step)
        return trainer

    # ------------------------------------------------------------------------------ the steps
    @property
    def env_step(self) -> int:
        return self.model.num_timesteps * self.repeat

    @property
    def finished(self) -> bool:
        return self.model.num_timesteps >= self.total_agent_steps

    def wall_time(self) -> float:
        return time.time() - self._start

    def step(self, callback: Any = None) -> None:
        """Train one episode (or what is left of the budget)."""
        chunk = min(self.episode_agent_steps, self.total_agent_steps - self.model.num_timesteps)
        self.model.learn(chunk, callback=callback, reset_num_timesteps=False, log_interval=1, progress_bar=False)

    def evaluate(self, record: bool = False) -> Any:
        """Deterministic evaluation episodes; one ``eval.csv`` row and the ``eval/*`` scalars."""
        from curl_agents.callbacks import evaluate

        render = self._video_frame if record and self._can_render_video() else None
        result = evaluate(
            self.model, self.eval_env, self.cfg.eval_episodes, self.eval_seed, self.loop["n_evals"], record, render
        )
        self.loop["n_evals"] += 1
        self.eval_csv.append(self.env_step, self.model.num_timesteps, result, self.wall_time(), note=self._note)
        self._note = ""
        self.model.logger.record("eval/mean_return", result.mean)
        self.model.logger.record("eval/std_return", result.std)
        self.model.logger.dump(step=self.model.num_timesteps)
        return result

    def save(self) -> Path:
        """Write a checkpoint (model, loop state with RNGs, replay unless ``save_replay`` is off, manifest)."""
        wrapper = self.train_env.envs[0].env  # Monitor -> ReseedEachEpisode
        self.loop.update(next_episode=wrapper.next_episode, wall_time_s=self.wall_time())
        with self.store.save(self.env_step) as folder:
            self.model.save(folder / MODEL_FILE)
            torch.save({"rng": _rng_state(self.model), "loop": dict(self.loop)}, folder / STATE_FILE)
            if self.cfg.save_replay:
                self.model.save_replay_buffer(folder / REPLAY_FILE)
            sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
            (folder / MANIFEST_FILE).write_text(json.dumps(sizes, indent=2))
        return self.store.latest()

    def fit(self) -> dict[str, Any]:
        """Train to the budget with evaluations and checkpoints on their schedule, then the final evaluation,
        outputs and checkpoint, and ``summary.json`` last. Resumed from the final checkpoint (a run stopped
        before its summary), it only writes the summary, from the final ``eval.csv`` row."""
        from tqdm import tqdm

        from curl_agents.callbacks import EnvStepProgressBar

        if self.finished:
            return self._write_summary(self._final_row_return())
        cfg = self.cfg
        bar = tqdm(
            total=self.total_agent_steps * self.repeat,
            initial=self.env_step,
            unit="env step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        callback = EnvStepProgressBar(bar, self.repeat)
        try:
            if self.loop["n_evals"] == 0:  # a new run: the initial policy, and a checkpoint to resume from
                self.evaluate()
                self.save()
            while not self.finished:
                self.step(callback)
                if self.finished:
                    break
                if self.env_step % cfg.eval_every_env_steps == 0:
                    bar.set_postfix(eval_return=round(self.evaluate().mean, 1))
                if self.env_step % cfg.checkpoint_every_env_steps == 0:
                    self.save()
        except NonFiniteLossError as err:
            bar.close()
            kept = self.store.latest()
            err.args = (f"{err}; the last good checkpoint is kept: {kept}",)
            atomic_write_text(self.out / "FAILED.txt", f"{err}\n")
            raise
        final = self.evaluate(record=cfg.video)
        bar.close()
        self._write_final_outputs(final)
        self.save()
        return self._write_summary(final.mean)

    # ------------------------------------------------------------------------------ outputs
    def _can_render_video(self) -> bool:
        return hasattr(self.eval_env.unwrapped, "physics")

    def _video_frame(self) -> np.ndarray:
        """The eval env's camera at ``video_size`` (independent of the network's input size)."""
        env = self.eval_env.unwrapped
        size = self.cfg.video_size
        return env.physics.render(size, size, camera_id=env.camera_id)

    def _write_final_outputs(self, final: Any) -> None:
        """``final_model.zip``, ``learning_curve.png`` and ``final_eval.gif`` (before the final checkpoint)."""
        from curl_agents.callbacks import plot_learning_curve, save_gif

        cfg, out = self.cfg, self.out
        buffer = io.BytesIO()
        self.model.save(buffer)
        atomic_write_bytes(out / "final_model.zip", buffer.getvalue())
        plot_learning_curve(out / "eval.csv", out / "learning_curve.png", title=f"{cfg.algo} {cfg.env} seed {cfg.seed}")
        if cfg.video and final.frames:
            save_gif(final.frames, out / "final_eval.gif")

    def _write_summary(self, final_mean_return: float) -> dict[str, Any]:
        """``summary.json``, the run's last write: its presence means the run reached its budget."""
        summary = {
            "final_mean_return": final_mean_return,
            "env_steps": self.env_step,
            "agent_steps": self.model.num_timesteps,
            "wall_time_s": round(self.wall_time(), 1),
        }
        atomic_write_json(self.out / "summary.json", summary)
        return summary

    def _final_row_return(self) -> float:
        """The mean return of the final evaluation, read back from ``eval.csv`` (its last row, at this step)."""
        rows = self.eval_csv.rows()
        if not rows or int(rows[-1]["env_step"]) != self.env_step:
            raise RuntimeError(f"{self.eval_csv.path}: no final evaluation row at env step {self.env_step}")
        return float(rows[-1]["mean_return"])

    def describe(self, sources: dict[str, str]) -> list[str]:
        """Lines printed at start: the budget, the resolved settings and the replay's size on disk."""
        cfg = self.cfg
        lines = [
            f"{cfg.algo} (aux {cfg.aux}) on {cfg.env}, seed {cfg.seed}: {cfg.env_steps:,} env steps = "
            f"{self.total_agent_steps:,} agent steps at action repeat {cfg.action_repeat} ({sources['action_repeat']})",
            f"lr {cfg.lr:g} ({sources['lr']}), batch {cfg.batch_size} ({sources['batch_size']}), replay "
            f"{cfg.buffer_size:,} transitions ({sources['buffer_size']}), precision {cfg.precision}, device {cfg.device}",
        ]
        if cfg.save_replay:
            size = replay_checkpoint_bytes(self.model.replay_buffer, self.total_agent_steps, self.episode_agent_steps)
            lines.append(
                f"replay saved with every checkpoint: up to about {_megabytes(size)} on disk "
                "(--no-save-replay skips it; resuming then needs --resume-without-replay)"
            )
        return lines


# --------------------------------------------------------------------------------------- main
@command(PROG)
def main(argv: Sequence[str] | None = None) -> None:
    from ssl_shared.host_memory import reuse_freed_host_memory
    from ssl_shared.provenance import record_launch

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.resume_without_replay and not args.resume:
        raise UserError("--resume-without-replay: allowed only with --resume")
    if args.resume:
        if out.is_dir():  # finish what a killed checkpoint write left, so the newest complete one is found
            CheckpointStore(out / "checkpoints").clean_leftovers()
        folder = find_checkpoint(out, CheckpointStore(out / "checkpoints"))
        saved = legacy_to_current(read_saved_config(out))
        plan = resolve_runtime(plan_from_args(args, saved))
        checkpoint, extra = _check_resume(args, out, folder, saved, plan)
    else:
        plan = resolve_runtime(plan_from_args(args))
        checkpoint, extra = None, {}
    cfg = plan.config
    # everything the user gave has been checked: from here on the run folder changes
    store = CheckpointStore(out / "checkpoints")
    if checkpoint is not None:
        checkpoint = adopt_legacy_checkpoint(store, checkpoint, checkpoint.agent_step * cfg.action_repeat)
    prepare_run_dir(out, resume=args.resume, store=store, run_markers=[f"checkpoints/{LEGACY_CHECKPOINT}"])
    _remove_write_leftovers(out)
    (out / "summary.json").unlink(missing_ok=True)  # written again when this launch reaches --env-steps
    atomic_write_json(out / "config.json", {**asdict(cfg), "sources": plan.sources, **extra})
    launch: dict[str, Any] = {"resume": args.resume}
    if checkpoint is not None:
        launch["resumed_at_env_step"] = checkpoint.agent_step * cfg.action_repeat
        launch["replay"] = "restored" if checkpoint.has_replay else "empty (--resume-without-replay)"
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    record_launch(out, [str(Path(__file__)), *argv] if argv is not None else None, **launch)

    reuse_freed_host_memory()  # no page faults for each update's activations (see ssl_shared.host_memory)
    progress = not args.no_progress
    if checkpoint is not None:
        trainer = Trainer.resume(cfg, out, checkpoint, fresh_replay=args.resume_without_replay, progress=progress)
    else:
        trainer = Trainer.new(cfg, out, progress=progress)
    for line in trainer.describe(plan.sources):
        print(line, file=sys.stderr)
    print(json.dumps(trainer.fit()))


def _check_resume(
    args: argparse.Namespace, out: Path, folder: Path, saved: dict[str, Any], plan: RunPlan
) -> tuple[CheckpointInfo, dict[str, Any]]:
    """Refuse a resume that would change the run or cannot continue it; returns the checkpoint and the
    ``config.json`` entries that are not settings (kept, plus this resume's empty replay if any)."""
    cfg = plan.config
    saved_cfg = resolve(RunConfig(**{k: v for k, v in saved.items() if k in plan.sources})).config
    if saved_cfg.precision == "auto":  # written before precision was resolved
        saved_cfg = replace(saved_cfg, precision=cfg.precision)
    check_resume_config(asdict(saved_cfg), asdict(cfg), ignore=CHANGEABLE_ON_RESUME, source=str(out / "config.json"))
    finished_at = finished_env_steps(out)
    if finished_at is not None and cfg.env_steps <= finished_at:
        raise UserError(
            f"--resume: the run in {out} is finished (summary.json at env step {finished_at}), so --env-steps "
            f"{cfg.env_steps} leaves nothing to do; allowed: a larger --env-steps to continue it"
        )
    checkpoint = inspect_checkpoint(folder)
    env_step = checkpoint.agent_step * cfg.action_repeat
    if checkpoint.agent_step > math.ceil(cfg.env_steps / cfg.action_repeat):
        raise UserError(
            f"--resume: the run in {out} already went past --env-steps {cfg.env_steps} (checkpoint at env step "
            f"{env_step}); allowed: a larger --env-steps to continue it"
        )
    extra = {k: v for k, v in saved.items() if k not in plan.sources and k != "sources"}
    if not checkpoint.has_replay and checkpoint.agent_step > 0:
        if not args.resume_without_replay:
            raise UserError(
                f"--resume: checkpoint {folder} has no replay buffer (saved with --no-save-replay); resuming would "
                "refill it with random steps and make a different run; pass --resume-without-replay to accept that"
            )
        key = "resumed_without_replay_at_env_steps"
        extra[key] = [*extra.get(key, []), env_step]
    return checkpoint, extra


if __name__ == "__main__":
    main()
