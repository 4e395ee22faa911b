"""``python -m curl_agents.train``: train CURL / RAD / DrQ / pixel SAC / state SAC on a DMC task.

    python -m curl_agents.train --env cheetah-run --algo curl --aux curl --steps 100000 --seed 1 \\
        --device auto --out runs/cheetah_curl_s1

Step convention: ``--steps``, ``--eval-every`` and ``--checkpoint-every`` count ENVIRONMENT steps
(dm_control control steps), as the CURL paper does: 100K steps on cartpole-swingup (action repeat 8)
are 12,500 agent steps (``env.step`` calls, what SB3's ``learn(total_timesteps)`` counts). Evaluation
and checkpoint intervals must be multiples of the episode length (1000 env steps), so they fall on
episode boundaries: the run is driven in one-episode ``learn`` chunks and everything is written
between them.

Outputs in ``--out``: ``config.json``, ``eval.csv`` (every ``--eval-every`` env steps, at 0 and at
the end; ``--eval-episodes`` deterministic episodes), TensorBoard events in ``tb/`` (x axis: ENV steps;
the scalar ``time/agent_steps`` holds the agent step),
``learning_curve.png``, ``final_eval.gif`` (first final evaluation episode), ``final_model.zip``
and ``checkpoints/latest`` (atomic; ``--save-replay`` adds the replay buffer).

``--resume`` continues the run in ``--out`` from its latest checkpoint: weights, optimizers,
temperature, step counters, the RNG states (torch, numpy, python, augmentation, action sampling)
and, when it was saved with ``--save-replay``, the replay buffer. Training-env episodes are seeded
by episode index, so a resumed run with a saved replay ends where an uninterrupted one would.
Without a saved replay the buffer restarts empty and ``--init-steps`` random-action agent steps
are collected again before training resumes (the run continues, but is not identical).

A NaN/inf loss stops the run with the loss and the step named (exit code 3); the last good
checkpoint is kept (nothing is written after the failure).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from curl_agents.algorithms import ALGORITHMS
from ssl_shared.host_memory import reuse_freed_host_memory

ALGO_NAMES = tuple(ALGORITHMS)


@dataclass
class RunConfig:
    """Everything that defines a run (written to ``config.json``; ``--resume`` checks it)."""

    env: str = "cartpole-swingup"
    algo: str = "curl"
    aux: str = "curl"
    aux_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 100_000  # ENV steps
    seed: int = 1
    device: str = "auto"
    action_repeat: int = 0  # 0: the task preset (PLANET_PRESETS) or 1
    lr: float = 0.0  # 0: the algorithm's rate for the task (task_learning_rates, e.g. CURL cheetah 2e-4)
    batch_size: int = 512  # CURL paper (author, issue #15); the repo's command uses 128
    image_size: int = 84  # network input
    render_size: int = 0  # 0: image_size + the algorithm's render_margin (CURL/RAD 16, others 0)
    frame_stack: int = 3
    episode_length: int = 1000  # env steps
    buffer_size: int = 100_000  # transitions
    init_steps: int = 1000  # random-action AGENT steps (CURL train.py)
    feature_dim: int = 50
    hidden_dim: int = 1024
    num_filters: int = 32
    num_layers: int = 4
    eval_every: int = 10_000  # env steps
    eval_episodes: int = 10
    checkpoint_every: int = 10_000  # env steps
    save_replay: bool = False
    video: bool = True
    torch_threads: int = 0  # 0: leave torch's setting (OMP_NUM_THREADS)


DEMO_PRESET: dict[str, Any] = {
    # A short CPU run (<= 10 minutes on 2 cores) that shows the pipeline end to end; not a paper setting.
    "env": "cartpole-swingup",
    "algo": "curl",
    "aux": "curl",
    "steps": 16_000,  # env steps = 2,000 agent steps at action repeat 8
    "batch_size": 32,
    "image_size": 56,
    "render_size": 64,
    "hidden_dim": 256,
    "init_steps": 250,
    "buffer_size": 10_000,
    "eval_every": 4_000,
    "eval_episodes": 3,
    "checkpoint_every": 8_000,
}
PRESETS = {"demo": DEMO_PRESET}


# --------------------------------------------------------------------------------------- config
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m curl_agents.train",
        description="Train a pixel (CURL/RAD/DrQ/pixel SAC) or state SAC agent on a DeepMind Control task. "
        "STEPS ARE ENVIRONMENT STEPS (before action repeat), as in the CURL paper: --steps 100000 on "
        "cartpole-swingup (action repeat 8) is 12,500 agent steps.",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named configuration (demo: short CPU CURL run)")
    p.add_argument("--env", help="dm_control task 'domain-task', e.g. cheetah-run (default cartpole-swingup)")
    p.add_argument("--algo", help=f"one of {', '.join(ALGO_NAMES)} (default curl)")
    p.add_argument("--aux", help="auxiliary objective for curl/drq/pixel_sac (default: curl for curl, else none)")
    p.add_argument("--aux-kwargs", type=json.loads, help='JSON dict, e.g. \'{"latent_dim": 128}\'')
    p.add_argument("--steps", type=int, help="training budget in ENV steps (default 100000)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--action-repeat", type=int, help="default: the task preset (cartpole 8, cheetah 4, ...)")
    p.add_argument("--lr", type=float, help="actor/critic/encoder lr (default: the algorithm's rate for the task; "
                   "docs/algorithm_defaults.md)")
    p.add_argument("--batch-size", type=int, help="default 512 (CURL paper); 128 = the CURL repo command")
    p.add_argument("--image-size", type=int, help="network input side (default 84)")
    p.add_argument("--render-size", type=int, help="rendered side (default: image+16 for curl/rad, =image otherwise)")
    p.add_argument("--buffer-size", type=int, help="replay capacity in transitions (default 100000)")
    p.add_argument("--init-steps", type=int, help="random-action AGENT steps before training (default 1000)")
    p.add_argument("--feature-dim", type=int)
    p.add_argument("--hidden-dim", type=int)
    p.add_argument("--num-filters", type=int)
    p.add_argument("--eval-every", type=int, help="ENV steps between evaluations (default 10000)")
    p.add_argument("--eval-episodes", type=int, help="deterministic episodes per evaluation (default 10)")
    p.add_argument("--checkpoint-every", type=int, help="ENV steps between checkpoints (default 10000)")
    p.add_argument("--episode-length", type=int, help="ENV steps per episode (default 1000)")
    p.add_argument("--save-replay", action="store_true", default=None, help="store the replay in checkpoints")
    p.add_argument("--no-video", dest="video", action="store_false", default=None)
    p.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: OMP_NUM_THREADS)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


def config_from_args(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> RunConfig:
    """Defaults (or a resumed run's ``saved`` config) <- preset <- explicit flags; then validate."""
    values = asdict(RunConfig())
    if saved is not None:
        values.update(saved)
    if args.preset:
        values.update(PRESETS[args.preset])
    explicit_aux = args.aux is not None
    for f in fields(RunConfig):
        flag = getattr(args, f.name, None)
        if flag is not None:
            values[f.name] = flag
    if saved is None and not explicit_aux and values["algo"] != "curl" and not args.preset:
        values["aux"] = "none"
    cfg = RunConfig(**values)
    validate_config(cfg)
    return cfg


def validate_config(cfg: RunConfig) -> None:
    from curl_agents.envs import valid_task_names
    from curl_agents.objectives import AUX_OBJECTIVES

    if cfg.algo not in ALGO_NAMES:
        raise ValueError(f"unknown --algo {cfg.algo!r}; valid: {', '.join(ALGO_NAMES)}")
    if cfg.aux not in AUX_OBJECTIVES:
        raise ValueError(f"unknown --aux {cfg.aux!r}; valid: {', '.join(sorted(AUX_OBJECTIVES))}")
    tasks = valid_task_names()
    if cfg.env not in tasks:
        raise ValueError(f"unknown --env {cfg.env!r}; valid: {', '.join(tasks)}")
    if cfg.algo in ("rad", "state_sac") and cfg.aux != "none":
        raise ValueError(f"--algo {cfg.algo} takes no auxiliary objective (got --aux {cfg.aux}); use --algo curl")
    for name in ("steps", "batch_size", "image_size", "eval_every", "eval_episodes", "checkpoint_every",
                 "episode_length", "buffer_size", "feature_dim", "hidden_dim", "num_filters", "frame_stack"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.init_steps < 0:
        raise ValueError(f"--init-steps must be >= 0, got {cfg.init_steps}")
    for name in ("eval_every", "checkpoint_every"):
        if getattr(cfg, name) % cfg.episode_length:
            raise ValueError(f"--{name.replace('_', '-')} ({getattr(cfg, name)}) must be a multiple of the episode "
                             f"length ({cfg.episode_length} env steps) so it falls on an episode boundary")
    if cfg.episode_length % resolved_action_repeat(cfg):
        raise ValueError(f"--episode-length {cfg.episode_length} must be a multiple of the action repeat "
                         f"{resolved_action_repeat(cfg)}")
    if cfg.algo != "state_sac" and resolved_render_size(cfg) < cfg.image_size:
        raise ValueError(f"--render-size {resolved_render_size(cfg)} must be >= --image-size {cfg.image_size}")
    if cfg.algo == "drq" and resolved_render_size(cfg) != cfg.image_size:
        raise ValueError(f"drq shifts keep the size: --render-size ({cfg.render_size}) must equal --image-size")


def resolved_action_repeat(cfg: RunConfig) -> int:
    from curl_agents.presets import PLANET_PRESETS

    if cfg.action_repeat:
        return cfg.action_repeat
    preset = PLANET_PRESETS.get(cfg.env)
    return preset.action_repeat if preset is not None else 1


def resolved_lr(cfg: RunConfig) -> float:
    """``--lr``, else the algorithm's learning rate for the task (its ``task_learning_rates``)."""
    from curl_agents.algorithms.defaults import task_learning_rate

    return cfg.lr if cfg.lr else task_learning_rate(algorithm_class(cfg), cfg.env)


def resolved_render_size(cfg: RunConfig) -> int:
    """``--render-size``, else ``--image-size`` plus the algorithm's ``render_margin`` (crops: 16, else 0)."""
    from curl_agents.algorithms.defaults import render_size

    return cfg.render_size if cfg.render_size else render_size(algorithm_class(cfg), cfg.image_size)


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

    pixels = cfg.algo != "state_sac"
    return make_env(
        cfg.env,
        from_pixels=pixels,
        image_size=resolved_render_size(cfg) if pixels else 84,
        action_repeat=resolved_action_repeat(cfg),
        frame_stack=cfg.frame_stack,
        seed=seed,
        episode_length=cfg.episode_length,
    )


def make_train_vec_env(cfg: RunConfig, next_episode: int = 0) -> Any:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def thunk() -> gym.Env:
        return Monitor(ReseedEachEpisode(make_task_env(cfg, cfg.seed), cfg.seed, next_episode))

    return DummyVecEnv([thunk])


def model_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """The constructor arguments ``build_model`` passes to ``algorithm_class(cfg)`` (besides policy, env, device)."""
    kwargs: dict[str, Any] = dict(
        learning_rate=resolved_lr(cfg),
        buffer_size=cfg.buffer_size,
        learning_starts=cfg.init_steps,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    if cfg.algo == "state_sac":
        return dict(kwargs, policy_kwargs={"net_arch": [cfg.hidden_dim, cfg.hidden_dim]})
    policy_kwargs = dict(feature_dim=cfg.feature_dim, hidden_dim=cfg.hidden_dim, num_filters=cfg.num_filters,
                         num_layers=cfg.num_layers)
    kwargs.update(image_size=cfg.image_size, policy_kwargs=policy_kwargs)
    if cfg.algo != "rad":
        kwargs.update(aux_kwargs=cfg.aux_kwargs, aux_lr=resolved_lr(cfg))
        if not (cfg.algo == "sac_ae" and cfg.aux == "none"):  # "none" is the default for non-curl --algo
            kwargs.update(aux=cfg.aux)
    return kwargs


def build_model(cfg: RunConfig, env: Any) -> Any:
    from ssl_shared.device import get_device

    policy = "MlpPolicy" if cfg.algo == "state_sac" else "CnnPolicy"
    return algorithm_class(cfg)(policy, env, device=get_device(cfg.device), **model_kwargs(cfg))


def algorithm_class(cfg: RunConfig) -> Any:
    return ALGORITHMS[cfg.algo]


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
        model.aug_generator.set_state(state["aug_generator"])


def save_checkpoint(out: Path, model: Any, loop_state: dict[str, Any], save_replay: bool) -> Path:
    """Write ``checkpoints/latest`` atomically (temporary directory, then ``os.replace``)."""
    from curl_agents.callbacks import atomic_write_dir

    final = out / "checkpoints" / "latest"
    with atomic_write_dir(final) as tmp:
        model.save(tmp / "model.zip")
        torch.save({"rng": _rng_state(model), "loop": loop_state}, tmp / "state.pt")
        if save_replay:  # FrameReplayBuffer pickles only the frames it holds
            model.save_replay_buffer(tmp / "replay.pkl")
    return final


def load_checkpoint(cfg: RunConfig, out: Path) -> tuple[Any, Any, dict[str, Any]]:
    from ssl_shared.device import get_device

    ckpt = out / "checkpoints" / "latest"
    if not (ckpt / "model.zip").exists():
        raise FileNotFoundError(f"--resume: no checkpoint in {ckpt}")
    state = torch.load(ckpt / "state.pt", weights_only=False)
    loop = state["loop"]
    env = make_train_vec_env(cfg, next_episode=loop["next_episode"] - 1)
    model = algorithm_class(cfg).load(ckpt / "model.zip", env=env, device=get_device(cfg.device), force_reset=False)
    if (ckpt / "replay.pkl").exists():
        model.load_replay_buffer(ckpt / "replay.pkl")
    else:  # empty buffer: collect init_steps random-action agent steps again before training resumes
        model.learning_starts = model.num_timesteps + cfg.init_steps
    saved_obs = model._last_obs
    model._last_obs = env.reset()  # re-creates the episode the checkpoint was taken at (reset by index)
    if saved_obs is not None and not np.array_equal(saved_obs, model._last_obs):
        raise RuntimeError("--resume: the training env does not reproduce the checkpoint's observation")
    _restore_rng_state(model, state["rng"])
    return model, env, loop


# --------------------------------------------------------------------------------------- the run
def _check_resume_config(out: Path, cfg: RunConfig) -> None:
    saved = json.loads((out / "config.json").read_text())
    ignore = {"steps", "device", "torch_threads"}
    diff = {k: (saved.get(k), v) for k, v in asdict(cfg).items() if k not in ignore and saved.get(k) != v}
    if diff:
        raise ValueError(f"--resume with a different configuration than {out / 'config.json'}: {diff}")


def run(cfg: RunConfig, out: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate and checkpoint as described in the module docstring; returns a summary."""
    from tqdm import tqdm

    from curl_agents.callbacks import (
        EnvStepProgressBar,
        EvalCSV,
        env_step_tensorboard_logger,
        evaluate,
        plot_learning_curve,
        save_gif,
    )

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    out.mkdir(parents=True, exist_ok=True)
    repeat = resolved_action_repeat(cfg)
    total_agent = math.ceil(cfg.steps / repeat)
    episode_agent = cfg.episode_length // repeat
    eval_csv = EvalCSV(out / "eval.csv")
    if resume:
        _check_resume_config(out, cfg)
        model, env, loop = load_checkpoint(cfg, out)
        eval_csv.truncate_after(model.num_timesteps * repeat)
    else:
        if (out / "checkpoints" / "latest").exists():
            raise FileExistsError(f"{out} already holds a run; pass --resume or choose another --out")
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        if eval_csv.path.exists():
            eval_csv.path.unlink()
        env = make_train_vec_env(cfg)
        model = build_model(cfg, env)
        loop = {"next_episode": 0, "n_evals": 0, "wall_time_s": 0.0}
    model.set_logger(env_step_tensorboard_logger(out / "tb", repeat))  # x axis: env steps
    eval_env = make_task_env(cfg, seed=cfg.seed + 10_000)
    eval_seed = cfg.seed + 10_000
    start = time.time() - loop["wall_time_s"]
    bar = tqdm(total=total_agent * repeat, initial=model.num_timesteps * repeat, unit="env step",
               disable=not progress, dynamic_ncols=True)
    callback = EnvStepProgressBar(bar, repeat)
    train_wrapper = env.envs[0].env  # Monitor -> ReseedEachEpisode

    def do_eval(record: bool = False) -> Any:
        result = evaluate(model, eval_env, cfg.eval_episodes, eval_seed, loop["n_evals"], record=record)
        loop["n_evals"] += 1
        env_step = model.num_timesteps * repeat
        row = eval_csv.append(env_step, model.num_timesteps, result, time.time() - start)
        model.logger.record("eval/mean_return", result.mean)
        model.logger.record("eval/std_return", result.std)
        model.logger.dump(step=model.num_timesteps)
        bar.set_postfix(eval_return=row["mean_return"])
        return result

    if model.num_timesteps == 0:
        do_eval()
    try:
        while model.num_timesteps < total_agent:
            chunk = min(episode_agent, total_agent - model.num_timesteps)
            model.learn(chunk, callback=callback, reset_num_timesteps=False, log_interval=1, progress_bar=False)
            env_step = model.num_timesteps * repeat
            last = model.num_timesteps >= total_agent
            if env_step % cfg.eval_every == 0 and not last:
                do_eval()
            if env_step % cfg.checkpoint_every == 0 or last:
                loop.update(next_episode=train_wrapper.next_episode, wall_time_s=time.time() - start)
                if not last:
                    save_checkpoint(out, model, loop, cfg.save_replay)
    except RuntimeError as err:
        if "non-finite" not in str(err):
            raise
        bar.close()
        (out / "FAILED.txt").write_text(f"{err}\n")
        print(f"training stopped: {err}\nthe last good checkpoint is kept in {out / 'checkpoints'}", file=sys.stderr)
        raise SystemExit(3) from err
    final = do_eval(record=cfg.video)
    loop.update(next_episode=train_wrapper.next_episode, wall_time_s=time.time() - start)
    save_checkpoint(out, model, loop, cfg.save_replay)
    bar.close()
    model.save(out / "final_model.zip")
    plot_learning_curve(out / "eval.csv", out / "learning_curve.png", title=f"{cfg.algo} {cfg.env} seed {cfg.seed}")
    if cfg.video and final.frames:
        save_gif(final.frames, out / "final_eval.gif")
    summary = {"final_mean_return": final.mean, "env_steps": model.num_timesteps * repeat,
               "agent_steps": model.num_timesteps, "wall_time_s": round(time.time() - start, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    saved = None
    config_path = Path(args.out) / "config.json"
    if args.resume and config_path.exists():
        saved = json.loads(config_path.read_text())
    try:
        cfg = config_from_args(args, saved)
    except ValueError as err:
        parser.error(str(err))
    reuse_freed_host_memory()  # no page faults for each update's activations (see ssl_shared.host_memory)
    summary = run(cfg, Path(args.out), resume=args.resume, progress=not args.no_progress)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
