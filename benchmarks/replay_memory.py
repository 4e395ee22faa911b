"""Replay memory per transition: FrameReplayBuffer vs SB3's ReplayBuffer vs the official CURL layout.

For 9x100x100 uint8 frame stacks (3 RGB frames of 100x100, CURL's pre-crop observations) and a 1-D
action (cartpole), it reports
  * nominal bytes per transition at a 100K capacity (allocated bytes / capacity),
  * RSS growth per transition while filling each buffer in a fresh process (episodes of 125 agent
    steps, i.e. cartpole's 1000 env steps at action repeat 8; random frame contents),
  * the median time to sample a batch on the CPU (informative only; see benchmarks/curl_throughput.py),
and the official CURL buffer's arithmetic: obs and next_obs stacks stored separately,
2 * 90,000 + 4 |A| + 4 + 4 = 180,012 B per transition (the official code, MishaLaskin/curl ``utils.py`` ``ReplayBuffer``: two uint8 arrays of
(capacity, 9, 100, 100), plus float32 actions, rewards and not-dones).

Run:  OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/replay_memory.py
Writes benchmarks/results/replay_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from experiments.provenance import git_commit

OBS_SHAPE = (9, 100, 100)
FRAME_BYTES = 3 * 100 * 100
OFFICIAL_CURL_BYTES = 2 * 9 * 100 * 100 + 4 * 1 + 4 + 4  # obs, next_obs, action, reward, not_done


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def make_buffer(kind: str, capacity: int):
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    from curl_agents.replay import FrameReplayBuffer

    obs_space = spaces.Box(0, 255, OBS_SHAPE, np.uint8)
    act_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    cls = FrameReplayBuffer if kind == "frame" else ReplayBuffer
    return cls(capacity, obs_space, act_space, device="cpu")


def nominal_bytes(buffer) -> int:
    """Bytes the buffer allocates (frame store / obs arrays plus per-step arrays)."""
    if hasattr(buffer, "nbytes"):
        return buffer.nbytes()
    names = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
    return sum(getattr(buffer, name).nbytes for name in names)


def fill(buffer, transitions: int, episode_steps: int, seed: int) -> None:
    """SB3-style add() loop over episodes of ``episode_steps`` agent steps with random frames."""
    rng = np.random.default_rng(seed)

    def frame() -> np.ndarray:
        return rng.integers(0, 256, size=(3, 100, 100), dtype=np.uint8)

    stack = None
    for t in range(transitions):
        if t % episode_steps == 0:
            stack = np.concatenate([frame()] * 3)
        next_stack = np.concatenate([stack[3:], frame()])
        truncated = (t + 1) % episode_steps == 0
        buffer.add(
            stack[None],
            next_stack[None],
            rng.uniform(-1, 1, size=(1, 1)).astype(np.float32),
            np.array([rng.random()], dtype=np.float32),
            np.array([truncated]),
            [{"TimeLimit.truncated": truncated}],
        )
        stack = next_stack


def worker(kind: str, transitions: int, episode_steps: int, batch: int, seed: int) -> dict:
    """Fill one buffer of capacity ``transitions`` in this process; measure RSS growth and sampling."""
    import torch

    torch.set_num_threads(1)
    buffer = make_buffer(kind, transitions)
    before = rss_bytes()
    start = time.perf_counter()
    fill(buffer, transitions, episode_steps, seed)
    fill_s = time.perf_counter() - start
    grown = rss_bytes() - before
    np.random.seed(seed)
    times = []
    for _ in range(15):
        start = time.perf_counter()
        buffer.sample(batch)
        times.append(time.perf_counter() - start)
    return {
        "kind": kind,
        "transitions": transitions,
        "rss_growth_bytes": grown,
        "rss_bytes_per_transition": grown / transitions,
        "nominal_bytes_per_transition": nominal_bytes(buffer) / transitions,
        "fill_seconds": fill_s,
        "sample_batch": batch,
        "sample_median_seconds": statistics.median(times[3:]),
    }


def run_worker(kind: str, transitions: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--transitions",
        str(transitions),
        "--episode-steps",
        str(args.episode_steps),
        "--batch",
        str(args.batch),
        "--seed",
        str(args.seed),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def provenance(args: argparse.Namespace, wall_s: float) -> dict:
    import gymnasium
    import stable_baselines3
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "command": "OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/replay_memory.py "
        + " ".join(sys.argv[1:]),
        "git_commit": git_commit(paths=("curl_agents/replay.py", "benchmarks/replay_memory.py")),
        "hardware": f"{os.cpu_count()}-core CPU ({cpu}), no GPU; machine shared with other jobs",
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "gymnasium": gymnasium.__version__,
        },
        "seed": args.seed,
        "wall_seconds": round(wall_s, 1),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def markdown(result: dict) -> str:
    nominal, measured, p = result["nominal_100k"], result["measured"], result["provenance"]
    lines = [
        "# Replay memory per transition (9x100x100 uint8 stacks, |A| = 1)",
        "",
        f"Command: `{p['command']}`  ",
        f"Commit: {p['git_commit']} (checked for uncommitted changes to the replay code and this script)  ",
        f"Hardware: {p['hardware']}  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in p['versions'].items())}  ",
        f"Seed {p['seed']}, wall time {p['wall_seconds']} s, {p['date_utc']}",
        "",
        "## Nominal bytes per transition at 100,000 capacity",
        "",
        "| buffer | bytes / transition | x one frame (30,000 B) | official CURL / this |",
        "|---|---|---|---|",
    ]
    for name, value in nominal.items():
        lines.append(f"| {name} | {value:,.0f} | {value / FRAME_BYTES:.3f} | {OFFICIAL_CURL_BYTES / value:.2f} |")
    lines += [
        "",
        f"## Measured while filling (fresh process per buffer, episodes of {result['episode_steps']} agent steps)",
        "",
        "| buffer | transitions | RSS growth / transition (B) | nominal / transition (B) | fill s | "
        f"median sample s (batch {result['batch']}, CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for m in measured:
        lines.append(
            f"| {m['kind']} | {m['transitions']:,} | {m['rss_bytes_per_transition']:,.0f} | "
            f"{m['nominal_bytes_per_transition']:,.0f} | {m['fill_seconds']:.1f} | {m['sample_median_seconds']:.4f} |"
        )
    lines += [
        "",
        "`frame` = curl_agents.replay.FrameReplayBuffer (each frame stored once, 5% spare frames for episode",
        "starts); `sb3` = stable_baselines3 ReplayBuffer (obs and next_obs stacks, handle_timeout_termination).",
        "The official CURL figure is arithmetic (two 9x100x100 uint8 stacks, the action, reward and not-done of MishaLaskin/curl ``utils.py``: 180,012 B).",
        "RSS counts pages touched: both buffers commit memory as they fill. Sampling times come from a shared,",
        "loaded 2-core machine and are indicative only.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=20_000, help="transitions for FrameReplayBuffer")
    parser.add_argument("--sb3-transitions", type=int, default=4_000, help="transitions for SB3 (6x the memory)")
    parser.add_argument("--episode-steps", type=int, default=125, help="agent steps per episode")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--worker", choices=["frame", "sb3"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.transitions, args.episode_steps, args.batch, args.seed)))
        return

    start = time.perf_counter()
    capacity = 100_000
    nominal = {
        "FrameReplayBuffer": nominal_bytes(make_buffer("frame", capacity)) / capacity,
        # linear in capacity; 1,000 avoids reserving 18 GB of address space
        "SB3 ReplayBuffer": nominal_bytes(make_buffer("sb3", 1_000)) / 1_000,
        "official CURL (arithmetic)": float(OFFICIAL_CURL_BYTES),
    }
    measured = [run_worker("frame", args.transitions, args), run_worker("sb3", args.sb3_transitions, args)]
    result = {
        "nominal_100k": nominal,
        "measured": measured,
        "episode_steps": args.episode_steps,
        "batch": args.batch,
        "target_bytes_per_transition": 1.1 * FRAME_BYTES,
    }
    result["provenance"] = provenance(args, time.perf_counter() - start)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("replay_memory.json", json.dumps(result, indent=2) + "\n"),
        ("replay_memory.md", markdown(result)),
    ):
        tmp = args.out / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out / name)
    print(markdown(result))


if __name__ == "__main__":
    main()
