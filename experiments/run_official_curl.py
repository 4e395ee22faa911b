"""The official CURL code (MishaLaskin/curl) under the batch-32 CPU protocol of this suite's CURL runs: a reference for its target.

The batch-32 CPU protocol asks pixel CURL on cartpole-swingup, 100K env steps, batch 32, to reach a final return of 250;
``run_curl.py curl`` measures our agent there. This script measures the official implementation under the
same protocol, so that the target can be read against what the reference code itself reaches.

    git clone https://github.com/MishaLaskin/curl /path/to/curl     # supplied by the user (not downloaded here)
    pip install scikit-image termcolor imageio                      # the official code's other imports
    python experiments/run_official_curl.py run --official-dir /path/to/curl --seed 1
    python experiments/run_official_curl.py summarize               # -> experiments/results/official_curl_b32_*

The official ``train.py`` runs unmodified, in a subprocess, with ``experiments/official_curl_shim`` first on
its ``PYTHONPATH`` (our stand-ins for ``dmc2gym`` and old ``gym``; tested to emit the same frames and rewards
as ``curl_agents.envs.make_env``). Flags: ``scripts/run.sh``'s, except the batch (32: train.py's default and
the issue's CPU setting), the budget (12,501 agent steps: 100K env steps at action repeat 8, the last
evaluation at agent step 12,500), the evaluation period (1,250 agent steps = 10K env steps), a fixed seed
instead of ``-1`` (random), and no ``--save_tb``. There is no checkpoint or resume in the official code: a
run must finish in one go (about 1.7 h on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from experiments.aggregate import bootstrap_mean_ci, read_eval_csv
from experiments.provenance import git_commit, package_versions

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "experiments" / "official_curl_shim"
RESULTS = ROOT / "experiments" / "results"
RUNS = ROOT / "runs"
GROUP = "official_curl_b32"
ACTION_REPEAT = 8
TARGET = 250.0
CODE_PATHS = ("experiments/official_curl_shim", "experiments/run_official_curl.py")
OURS = "curl_b32"  # the group of run_curl.py with the same protocol on our agent


def run_sh_args(seed: int) -> list[str]:
    """The cartpole-swingup flags of the official ``scripts/run.sh`` (minus ``--save_tb``, its logging), with ``seed``."""
    flags = {
        "--domain_name": "cartpole",
        "--task_name": "swingup",
        "--encoder_type": "pixel",
        "--action_repeat": str(ACTION_REPEAT),
        "--pre_transform_image_size": "100",
        "--image_size": "84",
        "--agent": "curl_sac",
        "--frame_stack": "3",
        "--seed": str(seed),
        "--critic_lr": "1e-3",
        "--actor_lr": "1e-3",
    }
    return [word for pair in flags.items() for word in pair]


def official_args(work_dir: Path, seed: int) -> list[str]:
    """``scripts/run.sh`` (cartpole-swingup) with the changes listed in the module docstring."""
    changes = {
        "--work_dir": str(work_dir),
        "--eval_freq": "1250",
        "--num_eval_episodes": "10",
        "--batch_size": "32",
        "--num_train_steps": "12501",
        "--init_steps": "1000",
        "--log_interval": "125",
    }
    return run_sh_args(seed) + [word for pair in changes.items() for word in pair]


def _official_commit(official_dir: Path) -> str:
    try:
        return subprocess.check_output(
            ["git", "-C", str(official_dir), "rev-parse", "HEAD"], text=True, stderr=subprocess.DEVNULL
        ).strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown (not a git checkout)"


def _check_official(official_dir: Path) -> None:
    if not (official_dir / "train.py").is_file() or not (official_dir / "curl_sac.py").is_file():
        raise SystemExit(
            f"--official-dir {official_dir}: no train.py and curl_sac.py there; pass a checkout of "
            "https://github.com/MishaLaskin/curl"
        )
    missing = [m for m in ("skimage", "termcolor", "imageio") if _missing(m)]
    if missing:
        raise SystemExit(f"the official code imports {', '.join(missing)}: pip install scikit-image termcolor imageio")


def _missing(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is None


def run(official_dir: Path, seed: int) -> int:
    """Train the official agent once; its logs go to ``runs/official_curl_b32_s<seed>/<its exp name>/``."""
    official_dir = official_dir.resolve()
    _check_official(official_dir)
    out = RUNS / f"{GROUP}_s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "train.py", *official_args(out, seed)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("PYOPENGL_PLATFORM", "egl")
    launch = {
        "command": " ".join(cmd),
        "cwd": str(official_dir),
        "official_commit": _official_commit(official_dir),
        "git_commit": git_commit(paths=CODE_PATHS),
        "versions": _versions(),
        "seed": seed,
        "started": time.time(),
    }
    (out / "launch.json").write_text(json.dumps(launch, indent=2))  # rewritten with rc and end time below
    print("running:", launch["command"], flush=True)
    rc = subprocess.call(cmd, cwd=official_dir, env=env)
    launch.update(rc=rc, finished=time.time())
    (out / "launch.json").write_text(json.dumps(launch, indent=2))
    return rc


def read_eval_log(path: Path) -> list[dict[str, float]]:
    """The official ``eval.log`` (JSON lines, ``step`` in agent steps) as rows in env steps.

    The official Logger averages the 10 episode rewards of an evaluation into ``episode_reward`` (=
    ``mean_episode_reward``) and keeps their maximum as ``best_episode_reward``; nothing else is logged.
    """
    rows = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        rows.append(
            {
                "env_step": int(entry["step"]) * ACTION_REPEAT,
                "agent_step": int(entry["step"]),
                "mean_return": float(entry["mean_episode_reward"]),
                "max_return": float(entry["best_episode_reward"]),
            }
        )
    return rows


def _versions() -> dict[str, str]:
    return package_versions(
        ["torch", "torchvision", "numpy", "dm-control", "mujoco", "gymnasium", "scikit-image", "termcolor", "imageio"]
    )


def summarize() -> dict:
    """Copy each run's curve to ``experiments/results/`` and compare the finals with our batch-32 runs."""
    runs = {}
    for out in sorted(RUNS.glob(f"{GROUP}_s*")):
        logs = sorted(out.glob("*/eval.log"))
        if not logs:
            continue
        rows = read_eval_log(logs[-1])
        csv_path = RESULTS / f"{out.name}_eval.csv"
        with csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        launch = json.loads((out / "launch.json").read_text()) if (out / "launch.json").exists() else {}
        runs[out.name] = {
            "finished": rows[-1]["env_step"] >= 100_000,
            "last_env_step": rows[-1]["env_step"],
            "last_mean_return": rows[-1]["mean_return"],
            "curve": [r["mean_return"] for r in rows],
            "wall_time_s": launch["finished"] - launch["started"] if "finished" in launch else None,
            "launch": launch,
            "args": json.loads((logs[-1].parent / "args.json").read_text()),
        }
    if not runs:
        raise SystemExit(f"no runs/{GROUP}_s*/*/eval.log here; run `run` first")
    ours = json.loads((RESULTS / f"{OURS}_summary.json").read_text())
    our_finals = [r["last_mean_return"] for r in ours["runs"].values() if r["finished"]]
    finals = [r["last_mean_return"] for r in runs.values() if r["finished"]]
    result = {
        "group": GROUP,
        "target": TARGET,
        "runs": runs,
        "ours": {OURS: our_finals},
        "provenance": {
            "git_commit": git_commit(paths=CODE_PATHS),
            "summarized_with_versions": _versions(),
            "hardware": "2-core shared CPU, no GPU",
            "shim": "experiments/official_curl_shim",
        },
    }
    lines = [
        f"# {GROUP}: the official CURL code at the batch-32 CPU protocol",
        "",
        "Official MishaLaskin/curl `train.py`, unmodified, cartpole-swingup, batch 32, 100K env steps, 10 "
        "deterministic evaluation episodes every 10K env steps (`python experiments/run_official_curl.py`; "
        "flags in its docstring).",
        "",
        "| run | official commit | final (100K) | curve, every 10K env steps | wall s |",
        "|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        wall = f"{r['wall_time_s']:.0f}" if r["wall_time_s"] is not None else "n/a"
        lines.append(
            f"| {name} | {r['launch'].get('official_commit', 'n/a')[:7]} | "
            f"{r['last_mean_return']:.1f}{'' if r['finished'] else ' (unfinished)'} | "
            f"{' / '.join(f'{v:.0f}' for v in r['curve'])} | {wall} |"
        )
    lines += [f"\n{name}: {r['launch']['how']}" for name, r in runs.items() if r["launch"].get("how")]
    for label, values in (("official code", finals), (f"ours ({OURS})", our_finals)):
        if values:
            mean, low, high = bootstrap_mean_ci(np.asarray(values))
            lines.append(
                f"\n{label}: {len(values)} finished seed(s), mean {mean:.1f}, 95% bootstrap CI "
                f"[{low:.1f}, {high:.1f}], {sum(v >= TARGET for v in values)} at or above {TARGET:g}."
            )
    lines += ["", f"Summary written at git commit {result['provenance']['git_commit']}; versions in the JSON."]
    (RESULTS / f"{GROUP}_summary.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{GROUP}_summary.md").write_text("\n".join(lines) + "\n")
    _plot(runs, ours)
    return result


def _plot(runs: dict, ours: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.plot_curves import label_return_axes

    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
    label = f"ours ({OURS})"
    for name in ours["runs"]:
        path = RESULTS / f"{name}_eval.csv"
        if path.exists():
            steps, returns = zip(*read_eval_csv(path))
            ax.plot(steps, returns, color="tab:blue", alpha=0.5, lw=1, label=label)
            label = None  # one legend entry for all our seeds
    for name in runs:
        steps, returns = zip(*read_eval_csv(RESULTS / f"{name}_eval.csv"))
        ax.plot(steps, returns, color="tab:red", marker="o", ms=3, label=f"official code ({name})")
    ax.axhline(TARGET, color="gray", ls="--", lw=1, label=f"issue target {TARGET:g}")
    label_return_axes(ax, "CURL, cartpole-swingup, batch 32", legend_size=6)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{GROUP}_vs_ours.png")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the official agent once (about 1.7 h on 2 CPU cores)")
    r.add_argument("--official-dir", type=Path, required=True, help="a checkout of MishaLaskin/curl")
    r.add_argument("--seed", type=int, default=1)
    sub.add_parser("summarize", help="write experiments/results/official_curl_b32_* from runs/")
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.cmd == "run":
        sys.exit(run(args.official_dir, args.seed))
    summarize()


if __name__ == "__main__":
    main()
