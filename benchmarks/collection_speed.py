"""Experience collection speed: pixel cartpole-swingup with random actions, one or two envs, DummyVecEnv
(envs stepped in turn in this process) vs SubprocVecEnv (one process per env, rendering in parallel).

Each configuration builds its VecEnv (the start-up time, workers importing dm_control, is reported
apart), steps ``--warmup`` times, then times ``--repeats`` runs of ``--vec-steps`` VecEnv steps with
uniform random actions (episodes end and reset as in training) and reports the median. Rates are
ENVIRONMENT steps per second (agent steps x action repeat 8, the convention of ``curl_agents.envs``)
and agent steps per second, summed over the envs. The observation is CURL's: 3 stacked frames rendered
at 100x100.

Run:  nice -n 10 .venv/bin/python benchmarks/collection_speed.py
Writes benchmarks/results/collection_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the dm_control import

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from curl_agents.envs import make_env
from ssl_shared.provenance import hardware, hardware_line, run_provenance

TASK = "cartpole-swingup"
RENDER = 100  # CURL's pre-crop render size
ACTION_REPEAT = 8  # PlaNet / CURL setting for cartpole
FRAME_STACK = 3
VEC_ENVS: dict[str, type[VecEnv]] = {"DummyVecEnv": DummyVecEnv, "SubprocVecEnv": SubprocVecEnv}


def build(kind: str, n_envs: int, seed: int) -> VecEnv:
    makers = [
        functools.partial(
            make_env, TASK, image_size=RENDER, action_repeat=ACTION_REPEAT, frame_stack=FRAME_STACK, seed=seed + i
        )
        for i in range(n_envs)
    ]
    return VEC_ENVS[kind](makers)


def step_random(venv: VecEnv, steps: int, rng: np.random.Generator) -> None:
    shape = (venv.num_envs, *venv.action_space.shape)
    for _ in range(steps):
        venv.step(rng.uniform(-1.0, 1.0, size=shape).astype(np.float32))


def measure(kind: str, n_envs: int, args: argparse.Namespace) -> dict:
    """Start-up seconds and the collection rate of one configuration."""
    start = time.perf_counter()
    venv = build(kind, n_envs, args.seed)
    venv.reset()
    startup_s = time.perf_counter() - start
    rng = np.random.default_rng(args.seed)
    try:
        step_random(venv, args.warmup, rng)
        agent_rates = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            step_random(venv, args.vec_steps, rng)
            agent_rates.append(n_envs * args.vec_steps / (time.perf_counter() - t0))
    finally:
        venv.close()
    agent_rate = statistics.median(agent_rates)
    return {
        "vec_env": kind,
        "n_envs": n_envs,
        "startup_s": round(startup_s, 2),
        "agent_steps_per_s": round(agent_rate, 2),
        "env_steps_per_s": round(agent_rate * ACTION_REPEAT, 1),
        "repeats_env_steps_per_s": [round(r * ACTION_REPEAT, 1) for r in agent_rates],
    }


def gl_renderer() -> str:
    """The OpenGL renderer MuJoCo draws with (e.g. Mesa's software ``llvmpipe`` or a GPU driver)."""
    env = make_env(TASK, image_size=RENDER, action_repeat=ACTION_REPEAT)
    try:
        from OpenGL import GL

        with env.physics.contexts.gl.make_current():
            return f"{GL.glGetString(GL.GL_RENDERER).decode()}; {GL.glGetString(GL.GL_VERSION).decode()}"
    except Exception as err:  # the renderer name is informative only
        return f"unknown ({type(err).__name__})"
    finally:
        env.close()


def markdown(result: dict) -> str:
    p = result["provenance"]
    rows = {(r["vec_env"], r["n_envs"]): r for r in result["rows"]}
    single = rows[("DummyVecEnv", 1)]["env_steps_per_s"] if ("DummyVecEnv", 1) in rows else float("nan")
    lines = [
        f"# Collection speed: pixel {TASK}, {RENDER}x{RENDER} render, action repeat {ACTION_REPEAT}, random actions",
        "",
        f"Command: `{p['command']}` (niceness {p['niceness']})  ",
        f"Commit: {p['git_commit']}  ",
        f"Hardware: {p['hardware_line']}  ",
        f"OpenGL renderer: {p['gl_renderer']} (MUJOCO_GL={p['mujoco_gl']})  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in p['versions'].items())}  ",
        f"Seed {p['seed']}; median of {result['repeats']} runs of {result['vec_steps']} VecEnv steps after "
        f"{result['warmup']} warm-up steps; wall time {p['wall_time_s']} s; {p['started_at']}",
        "",
        "| VecEnv | envs | env steps / s | agent steps / s | x one DummyVecEnv env | start-up s | runs (env steps / s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['vec_env']} | {r['n_envs']} | {r['env_steps_per_s']:.0f} | {r['agent_steps_per_s']:.1f} | "
            f"{r['env_steps_per_s'] / single:.2f} | {r['startup_s']:.1f} | "
            f"{', '.join(f'{x:.0f}' for x in r['repeats_env_steps_per_s'])} |"
        )
    lines += [
        "",
        "Env steps are dm_control control steps (agent steps x action repeat); each agent step renders one",
        "frame. Start-up (building the envs; SubprocVecEnv workers import torch, SB3 and dm_control) is not",
        "in the rates.",
        "",
        f"Measured on a shared machine: other engineers' jobs ran at the same time (load average 1/5/15 min "
        f"{p['hardware']['load_average_1_5_15']} at the start, {p['load_average_at_end']} at the end, on "
        f"{p['hardware']['cpu']['usable_cpus']} CPUs), so the rates are lower than on an idle machine and the "
        "SubprocVecEnv speed-up depends on how many cores were free.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--vec-steps", type=int, default=40, help="VecEnv steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    start = time.perf_counter()
    provenance = run_provenance(code_paths=("curl_agents", "benchmarks/collection_speed.py"))
    renderer = gl_renderer()
    rows = []
    for n_envs in args.n_envs:
        for kind in VEC_ENVS:
            rows.append(measure(kind, n_envs, args))
            print(json.dumps(rows[-1]), flush=True)
    provenance.update(
        hardware_line=hardware_line(provenance["hardware"]),
        gl_renderer=renderer,
        mujoco_gl=os.environ["MUJOCO_GL"],
        niceness=os.nice(0),
        seed=args.seed,
        load_average_at_end=hardware()["load_average_1_5_15"],
        wall_time_s=round(time.perf_counter() - start, 1),
    )
    result = {
        "task": TASK,
        "render": RENDER,
        "action_repeat": ACTION_REPEAT,
        "frame_stack": FRAME_STACK,
        "vec_steps": args.vec_steps,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "rows": rows,
        "provenance": provenance,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("collection_speed.json", json.dumps(result, indent=2) + "\n"),
        ("collection_speed.md", markdown(result)),
    ):
        tmp = args.out / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out / name)
    print(markdown(result))


if __name__ == "__main__":
    main()
