"""CURL throughput: seconds per update (and its parts), env steps/s while collecting, replay bytes/transition.

    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/curl_throughput.py --device cpu --threads 1
    python benchmarks/curl_throughput.py --device cuda            # CUDA path (when a GPU is present)

Full-size network, as in the CURL paper: 9x100x100 renders (frame stack 3), random crop 84, feature dim
50, 4 conv layers of 32 filters, MLPs 1024x2, cartpole-swingup at action repeat 8. The replay is
:class:`curl_agents.replay.FrameReplayBuffer` filled by real collection.

Measured (medians over ``--repeats``; wall clock and process CPU time, since this machine is shared):

* ``sample``: replay sample (uint8, on the device) + three random crops to float;
* ``critic``: target (actor + critic target on next_obs) + critic forward/backward/step;
* ``actor``: actor + temperature step (done every 2nd update), one shared detached conv forward;
* ``ema``: Polyak update of the Q heads (0.01) and the encoder (0.05) (every 2nd update);
* ``aux``: CURL's contrastive step (anchor forward/backward + key forward + Adam);
* ``full``: ``model.train(2, B) / 2``, i.e. one update with the actor/EMA every other step, as trained.

Reference (issue 3 §6, official CURL code on this 2-core CPU, medians): 1.66 s per update at batch
128 (critic 0.85, CURL 0.63, actor 0.38 every second step), 13.6 s at 512; ~244 env steps/s collecting
on cartpole; 180,012 replay bytes per transition. Results go to ``--out`` (.json and .md) with provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

import curl_agents  # noqa: F401  (imports the torch side before dm_control)
from curl_agents.algorithms import CURL
from curl_agents.envs import make_env
from experiments.provenance import package_versions
from ssl_shared.device import get_device
from ssl_shared.host_memory import reuse_freed_host_memory

OFFICIAL = {
    "s_per_update": {"128": 1.66, "512": 13.6},
    "split_b128": {"critic": 0.85, "aux": 0.63, "actor": 0.38},
    "env_steps_per_s": 244.0,
    "replay_bytes_per_transition": 180_012,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def median_pair(samples: list[tuple[float, float]]) -> dict[str, float]:
    return {"wall_s": statistics.median(s[0] for s in samples), "cpu_s": statistics.median(s[1] for s in samples)}


def measure_collection(model: CURL, agent_steps: int, action_repeat: int, device: torch.device) -> dict[str, float]:
    """Env steps/s while collecting with random actions (warm-up phase) and with the policy acting."""
    random_phase = timed(lambda: model.learn(agent_steps, reset_num_timesteps=False), device)
    learning_starts = model.learning_starts
    model.learning_starts = 0
    model.gradient_steps = 0  # acting + storing only, no updates
    policy_phase = timed(lambda: model.learn(agent_steps // 2, reset_num_timesteps=False), device)
    model.learning_starts, model.gradient_steps = learning_starts, 1
    return {
        "random_actions_env_steps_per_s_wall": agent_steps * action_repeat / random_phase[0],
        "random_actions_env_steps_per_s_cpu": agent_steps * action_repeat / random_phase[1],
        "policy_actions_env_steps_per_s_wall": (agent_steps // 2) * action_repeat / policy_phase[0],
        "policy_actions_env_steps_per_s_cpu": (agent_steps // 2) * action_repeat / policy_phase[1],
    }


def _sample_views(model: CURL, batch_size: int, holder: dict[str, object]) -> None:
    data = model.replay_buffer.sample(batch_size)
    holder["data"], holder["views"] = data, model.make_views(data.observations, data.next_observations)


def measure_updates(model: CURL, batch_size: int, repeats: int, device: torch.device) -> dict[str, dict[str, float]]:
    model.batch_size = batch_size
    model.train(4, batch_size)  # warm-up (allocations, oneDNN primitives for this batch shape)
    parts: dict[str, list[tuple[float, float]]] = {k: [] for k in ("sample", "critic", "actor", "ema", "aux", "full")}
    for _ in range(repeats):
        holder: dict[str, object] = {}
        parts["sample"].append(timed(lambda h=holder: _sample_views(model, batch_size, h), device))
        data, views = holder["data"], holder["views"]
        parts["critic"].append(timed(lambda d=data, v=views: model._update_critic(v, d), device))
        parts["actor"].append(timed(lambda v=views: model._update_actor_and_alpha(v.obs[0]), device))
        parts["ema"].append(timed(model._update_targets, device))
        parts["aux"].append(timed(lambda d=data, v=views: model._update_aux(v, d), device))
        wall, cpu = timed(lambda: model.train(2, batch_size), device)
        parts["full"].append((wall / 2, cpu / 2))
    return {k: median_pair(v) for k, v in parts.items()}


def provenance(args: argparse.Namespace, wall_s: float) -> dict[str, object]:
    try:
        commit = subprocess.check_output(["git", "rev-parse", "HEAD"], text=True, stderr=subprocess.DEVNULL).strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "uncommitted"
    names = ["torch", "stable-baselines3", "dm-control", "mujoco", "numpy"]
    return {
        "command": "python benchmarks/curl_throughput.py " + " ".join(args.argv),
        "git_commit": commit or "uncommitted",
        "hardware": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                     "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "torch_threads": torch.get_num_threads(),
        "allocator": args.allocator,
        "env": {k: os.environ.get(k, "") for k in ("OMP_NUM_THREADS", "MUJOCO_GL")},
        "load_average_at_end": os.getloadavg(),
        "versions": package_versions(names),
        "wall_time_s": round(wall_s, 1),
        "seed": args.seed,
    }


def write_markdown(path: Path, result: dict) -> None:
    lines = [f"# CURL throughput ({result['device']})", "",
             "Full-size CURL (9x100x100 render, crop 84, feature 50, hidden 1024), cartpole-swingup AR 8.",
             f"torch threads {result['provenance']['torch_threads']}; host allocator "
             f"{result['provenance'].get('allocator', 'default')}; load average at the end "
             f"{result['provenance']['load_average_at_end']} (shared machine: wall > CPU time when other jobs run).",
             "", "| batch | part | wall s (median) | CPU s (median) | official s (2-core wall) |", "|---|---|---|---|---|"]
    for batch, parts in result["updates"].items():
        for part, m in parts.items():
            ref = OFFICIAL["s_per_update"].get(batch) if part == "full" else (
                OFFICIAL["split_b128"].get(part) if batch == "128" else None)
            lines.append(f"| {batch} | {part} | {m['wall_s']:.3f} | {m['cpu_s']:.3f} | {ref if ref is not None else ''} |")
    lines += ["", "Collection (cartpole, AR 8, 100x100):", ""]
    lines += [f"- {k}: {v:.1f}" for k, v in result["collection"].items()]
    lines += ["", "Notes on CPU speed (what was tried):",
              "- Adam with `fused=True` (policy default): one kernel instead of a loop over tensors, ~5x faster "
              "optimizer steps on CPU (24 ms -> 4.7 ms for the 4.2M critic parameters, 1 thread).",
              "- The actor step runs the (detached) convolutions once and feeds both the actor head and the "
              "critic head (the CURL code runs them twice); same result.",
              "- The encoder runs its convolutions in `channels_last` (NHWC) with in-place ReLU: the same "
              "function, but oneDNN's NHWC kernels make the convolution backward ~1.6x faster on this CPU "
              "(grad-input of a 32->32 3x3 conv at batch 128: 43 vs 70 ms).",
              "- The host allocator keeps freed memory (`ssl_shared/host_memory.py`, `--allocator reuse`, as "
              "`curl_agents.train` runs): batch-512 activations (~110 MB each) are otherwise mapped and "
              "page-faulted anew every update.",
              "- Critic and CURL losses are NOT fused into one forward/backward: the CURL step must see the "
              "encoder after the critic step (sequential semantics of the paper's code).",
              "- Per-update work is otherwise the paper's: the conv FLOPs dominate and are the same as the "
              "official code's, so CPU gains come from sampling (torch gather + crop vs numpy) and the optimizer."]
    lines += ["", f"Replay bytes per transition: {result['replay']['bytes_per_transition']:.0f} "
              f"(official: {OFFICIAL['replay_bytes_per_transition']}).", "",
              f"Command: `{result['provenance']['command']}`; git {result['provenance']['git_commit']}."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="CURL update / collection throughput")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--collect-steps", type=int, default=400, help="agent steps of random collection")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/curl_throughput_cpu")
    p.add_argument("--allocator", choices=("reuse", "default"), default="reuse",
                   help="reuse: ssl_shared.host_memory.reuse_freed_host_memory(), as curl_agents.train does; "
                   "default: glibc's settings")
    args = p.parse_args(argv)
    args.argv = argv if argv is not None else __import__("sys").argv[1:]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.allocator == "reuse":
        reuse_freed_host_memory()
    device = get_device(args.device)
    start = time.time()
    env = make_env("cartpole-swingup", image_size=100, seed=args.seed)
    model = CURL("CnnPolicy", env, seed=args.seed, device=device, learning_starts=10**9)
    collection = measure_collection(model, args.collect_steps, env.unwrapped.action_repeat, device)
    model.learning_starts = 0
    updates = {str(b): measure_updates(model, b, args.repeats, device) for b in args.batch_sizes}
    replay = {"bytes_per_transition": float(model.replay_buffer.bytes_per_transition()),
              "stored_transitions": int(model.replay_buffer.size()), "nbytes": int(model.replay_buffer.nbytes())}
    result = {"device": str(device), "updates": updates, "collection": collection, "replay": replay,
              "official_reference": OFFICIAL}
    result["provenance"] = provenance(args, time.time() - start)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    write_markdown(out.with_suffix(".md"), result)
    print(json.dumps({b: u["full"] for b, u in updates.items()}), json.dumps(collection), json.dumps(replay))


if __name__ == "__main__":
    main()
