"""Learning runs of issue 3 §6 on CPU, and their summaries with provenance.

    python experiments/run_curl.py state-sac --seeds 1 2 3      # state SAC, cartpole-swingup, 100K env steps
    python experiments/run_curl.py curl --seed 1                # pixel CURL, cartpole-swingup, 100K, batch 32
    python experiments/run_curl.py curl --official-double-step --seed 3   # the official double encoder step
    python experiments/run_curl.py curl --batch-128 --seed 1    # the official run.sh batch (~3.9 h, 2 threads)
    python experiments/run_curl.py rad --seed 1                 # RAD at the same settings (no auxiliary loss)
    python experiments/run_curl.py summarize                    # (partial) curves -> experiments/results/

Runs go to ``runs/<name>`` (``python -m curl_agents.train`` in a subprocess each, checkpointed every
5K (pixel) or 10K (state) env steps; rerunning the same command resumes an unfinished run);
``summarize`` copies every ``eval.csv`` to ``experiments/results/<name>_eval.csv`` and writes
``<group>_summary.json`` / ``.md`` with the final (or latest, if unfinished) evaluation, the command, git
commit, hardware and versions. Rows of committed runs whose directories are not on this machine are kept,
so seeds add up across machines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from experiments.aggregate import bootstrap_mean_ci
from experiments.provenance import git_commit, package_versions

ROOT = Path(__file__).resolve().parents[1]
# what the runs' numbers depend on: a change elsewhere (e.g. the result files these runs write) does
# not mark their commit as having uncommitted changes
CODE_PATHS = ("curl_agents", "ssl_shared", "experiments/*.py", "pyproject.toml")
RESULTS = ROOT / "experiments" / "results"
RUNS = ROOT / "runs"
TARGET_STEPS = 100_000

# State SAC: CURL paper settings (curl_agents.algorithms.state_sac) except the hidden width (see README of
# the results): 1024x2 costs ~0.09 CPU-s per agent step on this shared 2-core machine (3 seeds ~ 1 CPU-hour),
# too much next to the pixel run, so the runs here use 256x2.
STATE_SAC_ARGS = [
    "--env",
    "cartpole-swingup",
    "--algo",
    "state_sac",
    "--steps",
    str(TARGET_STEPS),
    "--batch-size",
    "128",
    "--hidden-dim",
    "256",
    "--eval-every",
    "10000",
    "--eval-episodes",
    "10",
    "--checkpoint-every",
    "10000",
]


# Pixel CURL: the official train.py batch (32); other settings the paper's (render 100, crop 84, feature 50,
# hidden 1024, lr 1e-3, action repeat 8); 10 deterministic eval episodes every 10K env steps; the replay is
# saved with the checkpoints so that a resumed run ends where an uninterrupted one would.
def _pixel_args(batch_size: int) -> list[str]:
    return [
        "--env",
        "cartpole-swingup",
        "--steps",
        str(TARGET_STEPS),
        "--batch-size",
        str(batch_size),
        "--eval-every",
        "10000",
        "--eval-episodes",
        "10",
        "--checkpoint-every",
        "5000",
        "--save-replay",
    ]


PIXEL_B32_ARGS = _pixel_args(32)
CURL_ARGS = ["--algo", "curl", "--aux", "curl", *PIXEL_B32_ARGS]
# The same CURL with the official code's second encoder Adam on the CURL loss (a documented option of
# curl_agents.objectives.curl.CurlObjective; the encoder takes two steps per update, W one). Reported apart.
CURL_DOUBLE_ARGS = [*CURL_ARGS, "--aux-kwargs", '{"official_double_step": true}']
# The same CURL at the official run.sh batch (128): four times the samples per update; 1.0-1.2 s per agent
# step measured in training on this 2-core CPU (2 threads): seed 1 took 14,039 s (3.9 h) for 100K env steps.
# Reported apart: the CPU target is for batch 32.
CURL_B128_ARGS = ["--algo", "curl", "--aux", "curl", *_pixel_args(128)]
# RAD: the same SAC, views and budget without the auxiliary loss (what the CURL loss adds at this batch).
RAD_ARGS = ["--algo", "rad", *PIXEL_B32_ARGS]
CURL_GROUPS = {  # group -> (run-name prefix, note)
    "curl_b32": ("curl_b32_s", "current runs (CURL_ARGS)"),
    "curl_b32_double": ("curl_b32_double_s", "CURL_DOUBLE_ARGS: the official code's double encoder step"),
    "curl_b128": ("curl_b128_s", "CURL_B128_ARGS: CURL_ARGS at the official run.sh batch 128"),
    "curl_cartpole_b32": ("curl_cartpole_b32_s", "first session's run: 5 eval episodes, resumed at 10K without replay"),
    "rad_b32": ("rad_b32_s", "RAD baseline (RAD_ARGS): CURL's settings without the auxiliary loss"),
}
CURL_PAPER = "CURL 100K: 582 +- 146 (CURL Table 1, batch 512)"
RAD_PAPER = "no published figure at batch 32; compare curl_b32 (same settings plus the CURL loss)"


def _train(name: str, args: list[str], seed: int, extra: list[str]) -> int:
    out = RUNS / name
    cmd = [
        sys.executable,
        "-m",
        "curl_agents.train",
        *args,
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    if (out / "checkpoints" / "latest").exists() and not (out / "summary.json").exists():
        cmd.append("--resume")
    if (out / "summary.json").exists():
        print(f"{name}: already finished")
        return 0
    (RUNS / name).mkdir(parents=True, exist_ok=True)
    (out / "command.txt").write_text(" ".join(cmd) + "\n")
    launches = json.loads((out / "launches.json").read_text()) if (out / "launches.json").exists() else []
    launches.append(
        {
            "git_commit": git_commit(paths=CODE_PATHS),
            "resume": "--resume" in cmd,
            "nice": os.nice(0),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
            "command": " ".join(cmd),
        }
    )
    (out / "launches.json").write_text(json.dumps(launches, indent=2))
    print("running:", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def _versions() -> dict[str, str]:
    return package_versions(["torch", "stable-baselines3", "gymnasium", "dm-control", "mujoco", "numpy"])


def _read_eval(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _plot_group(group: str, curves: dict[str, Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.plot_curves import label_return_axes

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for name, path in curves.items():
        rows = _read_eval(path)
        ax.plot([r["env_step"] for r in rows], [r["mean_return"] for r in rows], marker="o", label=name)
    label_return_axes(ax, group, legend_size=6)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{group}_curves.png")
    plt.close(fig)


def _provenance() -> dict:
    hardware = (
        "2-core shared CPU (AMD EPYC), no GPU; other jobs may share the CPU (wall times are not compute "
        "times; each launch records its nice value)"
    )
    return {
        "git_commit": git_commit(paths=CODE_PATHS),
        "hardware": hardware,
        "versions": _versions(),
        "env": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")},
    }


def _short_commit(commit: str) -> str:
    head, _, rest = commit.partition(" ")  # keeps a "+ uncommitted changes" mark
    return f"{head[:7]} {rest}".strip()


def _run_entry(run: Path, provenance: dict) -> dict:
    """One run's row of the summary, read from its directory under ``runs/``."""
    rows = _read_eval(run / "eval.csv")
    shutil.copyfile(run / "eval.csv", RESULTS / f"{run.name}_eval.csv")
    if (run / "learning_curve.png").exists():
        shutil.copyfile(run / "learning_curve.png", RESULTS / f"{run.name}_learning_curve.png")
    last = rows[-1]
    return {
        "finished": (run / "summary.json").exists(),
        "last_env_step": int(last["env_step"]),
        "last_mean_return": last["mean_return"],
        "wall_time_s": last["wall_time_s"],
        "command": (run / "command.txt").read_text().strip() if (run / "command.txt").exists() else "",
        "config": json.loads((run / "config.json").read_text()),
        # the commit each (re)start ran on; absent for runs launched before this was recorded
        "launches": json.loads((run / "launches.json").read_text()) if (run / "launches.json").exists() else None,
        # who wrote this row, from what (kept with the row when a later summary carries it over)
        "summarized_with": provenance,
    }


def summarize(group: str, prefix: str, target: float, paper: str) -> dict:
    """Write ``<group>_summary.json``/``.md`` and the curves plot from the runs under ``runs/<prefix>*``.

    Runs already in the committed summary whose directory is not on this machine (an earlier machine's
    runs) are carried over unchanged, with their own provenance, so a new seed adds to the table instead
    of replacing it; a run present in ``runs/`` replaces its old row.
    """
    provenance = _provenance()
    summary_path = RESULTS / f"{group}_summary.json"
    previous = json.loads(summary_path.read_text()) if summary_path.exists() else {"runs": {}}
    old_provenance = previous.get("provenance")
    per_run: dict[str, dict] = {}
    for name, entry in previous["runs"].items():
        if (RUNS / name / "eval.csv").exists() or not (RESULTS / f"{name}_eval.csv").exists():
            continue
        if "summarized_with" not in entry and old_provenance is not None:  # rows written before rows kept their own
            entry = {**entry, "summarized_with": old_provenance}
        per_run[name] = {**entry, "carried_over": True}
    for run in sorted(p for p in RUNS.glob(f"{prefix}*") if (p / "eval.csv").exists()):
        per_run[run.name] = _run_entry(run, provenance)
    per_run = dict(sorted(per_run.items()))
    finals = [r["last_mean_return"] for r in per_run.values() if r["finished"]]
    result = {
        "group": group,
        "target": target,
        "paper": paper,
        "runs": per_run,
        "finished_runs": len(finals),
        "mean_final_return": float(np.mean(finals)) if finals else None,
        "std_final_return": float(np.std(finals)) if finals else None,
        "provenance": provenance,
    }
    lines = [
        f"# {group}",
        "",
        f"Target: {target}. Paper: {paper}.",
        "",
        "| run | finished | last eval env step | last mean return (eval episodes) | wall s | launched at commit |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in per_run.items():
        commits = sorted({_short_commit(launch["git_commit"]) for launch in r.get("launches") or []}) or [
            "not recorded"
        ]
        lines.append(
            f"| {name} | {r['finished']} | {r['last_env_step']} | {r['last_mean_return']:.1f} | "
            f"{r['wall_time_s']:.0f} | {', '.join(commits)} |"
        )
    if finals:
        mean, low, high = bootstrap_mean_ci(np.asarray(finals))
        result["final_return_ci95"] = [low, high]
        result["runs_reaching_target"] = sum(f >= target for f in finals)
        lines += [
            "",
            f"Mean final return over {len(finals)} finished run(s): {mean:.1f} +- {np.std(finals):.1f} "
            f"(population std); 95% bootstrap CI of the mean over seeds [{low:.1f}, {high:.1f}]; "
            f"{result['runs_reaching_target']} of {len(finals)} run(s) at or above the target {target:g}.",
        ]
    if any(not r["finished"] for r in per_run.values()):
        lines += [
            "",
            "Unfinished runs were still training (or were stopped) when this summary was written; their "
            "last row is a partial result, not a final one. Resume: rerun the same `run_curl.py` command.",
        ]
    if any(r.get("carried_over") for r in per_run.values()):
        lines += [
            "",
            "Rows marked `carried_over` in the JSON come from an earlier summary (their run directories "
            "are on another machine); each keeps the provenance it was summarized with (`summarized_with`).",
        ]
    if per_run:
        c = next(iter(per_run.values()))["config"]
        aux = f"{c['aux']} {json.dumps(c['aux_kwargs'])}" if c.get("aux_kwargs") else c["aux"]
        lines += [
            "",
            f"Settings: algo {c['algo']}, aux {aux}, batch {c['batch_size']}, hidden {c['hidden_dim']}, "
            f"image {c['image_size']} (render {c['render_size'] or 'default'}), lr {c['lr'] or 'preset'}, "
            f"action repeat {c['action_repeat'] or 'preset'}, init steps {c['init_steps']} (agent), "
            f"eval every {c['eval_every']} env steps x {c['eval_episodes']} episodes (deterministic).",
        ]
        _plot_group(group, {name: RESULTS / f"{name}_eval.csv" for name in per_run})
    lines += [
        "",
        f"Commands: see `{group}_summary.json` (`runs.*.command`); summary written at git commit "
        f"{provenance['git_commit']}.",
        "Hardware: 2-core shared CPU, no GPU.",
    ]
    summary_path.write_text(json.dumps(result, indent=2))
    (RESULTS / f"{group}_summary.md").write_text("\n".join(lines) + "\n")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("state-sac")
    s.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    c = sub.add_parser("curl")
    c.add_argument("--seed", type=int, default=1)
    variant = c.add_mutually_exclusive_group()
    variant.add_argument(
        "--official-double-step",
        action="store_true",
        help="run CURL_DOUBLE_ARGS (group curl_b32_double) instead of CURL_ARGS",
    )
    variant.add_argument(
        "--batch-128",
        action="store_true",
        help="run CURL_B128_ARGS (group curl_b128): the official run.sh batch instead of 32",
    )
    r = sub.add_parser("rad", help="the RAD baseline at CURL's settings")
    r.add_argument("--seed", type=int, default=1)
    sub.add_parser("summarize")
    args, extra = p.parse_known_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.cmd == "state-sac":
        for seed in args.seeds:
            _train(f"state_sac_cartpole_s{seed}", STATE_SAC_ARGS, seed, extra)
            summarize("state_sac_cartpole", "state_sac_cartpole_s", 750.0, "state SAC 100K: 835 +- 22 (CURL Table 1)")
    elif args.cmd == "curl":
        group = "curl_b32_double" if args.official_double_step else "curl_b128" if args.batch_128 else "curl_b32"
        curl_args = {"curl_b32": CURL_ARGS, "curl_b32_double": CURL_DOUBLE_ARGS, "curl_b128": CURL_B128_ARGS}[group]
        prefix = CURL_GROUPS[group][0]
        _train(f"{prefix}{args.seed}", curl_args, args.seed, extra)
        summarize(group, prefix, 250.0, CURL_PAPER)
    elif args.cmd == "rad":
        _train(f"rad_b32_s{args.seed}", RAD_ARGS, args.seed, extra)
        summarize("rad_b32", "rad_b32_s", 250.0, RAD_PAPER)
    else:
        summarize("state_sac_cartpole", "state_sac_cartpole_s", 750.0, "state SAC 100K: 835 +- 22 (CURL Table 1)")
        for group, (prefix, _) in CURL_GROUPS.items():
            summarize(group, prefix, 250.0, CURL_PAPER)


if __name__ == "__main__":
    main()
