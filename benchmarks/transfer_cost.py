"""What zero-shot visual transfer (``scv-transfer``) costs: env steps, translator training, per-frame translation.

    MUJOCO_GL=egl nice -n 10 python benchmarks/transfer_cost.py --threads 1 \\
        --agent-run runs/agent --out benchmarks/results/transfer_cost_cpu

Measured, on this machine and torch thread count:

* env step: ``make_env(cartpole-swingup)`` with action repeat 8 and ``--render`` px frames: simulation and
  rendering per agent step, in the default look and in ``color_shift_1.0`` (a look changes data, not cost);
* translation per frame: the trained translator's generator (:class:`ModuleFrameTranslator` around the
  padded generator, uint8 in and out, batch 1 as in ``TranslateFrames``) at ``--render`` px and 100 px,
  for the CUT paper generator (ngf 64, 9 blocks) and the small one of ``--small`` (untrained weights: the
  cost does not depend on them);
* translator training: seconds per ``train_step`` of CUT, FastCUT and CycleGAN on random ``--render`` px
  batches of 1 (data loading excluded), paper and small networks;
* agent training: from a finished ``curl_agents.train`` run (``--agent-run``): its settings, env steps and
  wall time (``summary.json``), and its CPU time when given (``--agent-cpu-s``, e.g. user + system seconds
  from ``/usr/bin/time``), i.e. the cost of one agent under that run's protocol.

Medians over ``--repeats`` timed calls after ``--warmup`` untimed ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402,F401  (before dm_control: the reverse order crashes under EGL)

from ssl_shared.provenance import hardware_line, run_provenance  # noqa: E402

SMALL = {"ngf": 16, "ndf": 32, "n_blocks": 6}


def median_seconds(fn: Callable[[], Any], warmup: int, repeats: int) -> dict[str, float]:
    """Median wall and CPU (this process, all threads) seconds per call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def scaled(seconds: dict[str, float], factor: float) -> dict[str, float]:
    return {k: v * factor for k, v in seconds.items()}


def env_step_ms(render: int, look: str, warmup: int, repeats: int) -> dict[str, float]:
    from curl_agents.envs import make_env

    env = make_env("cartpole-swingup", image_size=render, seed=0, look=look)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, (1,)).astype(np.float32))
        if terminated or truncated:
            env.reset()

    return scaled(median_seconds(step, warmup, repeats), 1000)


def model_options(name: str, small: bool) -> dict[str, Any]:
    from cut_translation.cli import model_overrides

    return model_overrides(dict(SMALL) if small else {}, name)


def translate_ms(size: int, small: bool, warmup: int, repeats: int) -> dict[str, float]:
    from curl_agents.frame_translation import ModuleFrameTranslator
    from cut_translation.models import build_model, make_config
    from cut_translation.transfer.translators import PaddedGenerator

    model = build_model("cut", make_config("cut", **model_options("cut", small)), seed=0)
    translator = ModuleFrameTranslator(PaddedGenerator(model.translator))
    frame = np.random.default_rng(0).integers(0, 256, (1, 3, size, size), dtype=np.uint8)
    return scaled(median_seconds(lambda: translator(frame), warmup, repeats), 1000)


def train_step_s(name: str, size: int, small: bool, warmup: int, repeats: int) -> dict[str, float]:
    from cut_translation.models import build_model, make_config

    model = build_model(name, make_config(name, **model_options(name, small)), seed=0)
    g = torch.Generator().manual_seed(0)
    a, b = (torch.rand(1, 3, size, size, generator=g) * 2 - 1 for _ in range(2))
    step = iter(range(1, 10**6))
    return median_seconds(lambda: model.train_step(a, b, step=next(step)), warmup, repeats)


def agent_cost(run: Path | None, cpu_s: float | None) -> dict[str, Any] | None:
    if run is None:
        return None
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    keys = (
        "env",
        "algo",
        "aux",
        "batch_size",
        "image_size",
        "render_size",
        "hidden_dim",
        "steps",
        "seed",
        "torch_threads",
    )
    return {
        "run": str(run),
        "settings": {k: config.get(k) for k in keys},
        "env_steps": summary["env_steps"],
        "wall_time_s": summary["wall_time_s"],
        "final_mean_return": summary["final_mean_return"],
        "cpu_s": cpu_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output path without extension (.json and .md are written)")
    p.add_argument("--render", type=int, default=64, help="rendered frame side (the agents' render size)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--agent-run", type=Path, default=None, help="a finished curl_agents.train run folder")
    p.add_argument("--agent-cpu-s", type=float, default=None, help="that run's CPU seconds (e.g. from /usr/bin/time)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    w, r = args.warmup, args.repeats
    results: dict[str, Any] = {
        "env_step_ms": {look: env_step_ms(args.render, look, 5, 4 * r) for look in ("default", "color_shift_1.0")},
        "translate_ms_per_frame": {
            f"{'small' if small else 'paper'} {size}px": translate_ms(size, small, w, 4 * r)
            for small in (False, True)
            for size in (args.render, 100)
        },
        "train_s_per_iter": {
            f"{name} {'small' if small else 'paper'} {args.render}px": train_step_s(name, args.render, small, w, r)
            for name in ("cut", "fastcut", "cyclegan")
            for small in (False, True)
        },
        "agent": agent_cost(args.agent_run, args.agent_cpu_s),
        "settings": {**vars(args), "agent_run": str(args.agent_run), "small": SMALL},
    }
    results["provenance"] = {
        **run_provenance(code_paths=("curl_agents", "cut_translation", "benchmarks")),
        "wall_s": round(time.time() - start, 1),
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def _per_step(seconds: float | None, env_steps: int) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s ({1000 * seconds / env_steps:.1f} ms per env step)"


def markdown(results: dict[str, Any]) -> str:
    prov, s = results["provenance"], results["settings"]
    lines = [
        f"# Cost of zero-shot visual transfer ({s['render']} px frames)",
        "",
        f"Command: `{prov['command']}`  ",
        f"Commit: {prov['git_commit']}; {hardware_line(prov['hardware'])}; load at start "
        f"{prov['hardware']['load_average_1_5_15']}; median of {s['repeats']} (training) / {4 * s['repeats']} "
        f"(env, translation) timed calls after {s['warmup']} untimed; wall {prov['wall_s']} s.",
        "",
        "CPU time is this process's (all threads); on a shared machine it is the better measure of the work, wall "
        "time includes waiting for the CPU.",
        "",
        "| what | CPU | wall |",
        "|---|---|---|",
    ]
    for look, ms in results["env_step_ms"].items():
        lines.append(
            f"| env step, cartpole-swingup, action repeat 8, look {look} | {ms['cpu']:.2f} ms | {ms['wall']:.2f} ms |"
        )
    for key, ms in results["translate_ms_per_frame"].items():
        lines.append(
            f"| translation per frame, CUT generator {key}, batch 1 | {ms['cpu']:.2f} ms | {ms['wall']:.2f} ms |"
        )
    for key, sec in results["train_s_per_iter"].items():
        lines.append(f"| translator training, {key}, batch 1 | {sec['cpu']:.3f} s/it | {sec['wall']:.3f} s/it |")
    agent = results["agent"]
    if agent:
        st = agent["settings"]
        lines.append(
            f"| agent training, {st['algo']} on {st['env']} (batch {st['batch_size']}, render {st['render_size']}, "
            f"crop {st['image_size']}, hidden {st['hidden_dim']}), {agent['env_steps']} env steps | "
            f"{_per_step(agent.get('cpu_s'), agent['env_steps'])} | {_per_step(agent['wall_time_s'], agent['env_steps'])} |"
        )
    lines += ["", f"Small networks: {s['small']} (paper: ngf 64, ndf 64, 9 blocks).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
