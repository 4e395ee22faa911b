"""Reproduce the CURL paper's DeepMind Control table (the six PlaNet tasks at 100K / 500K env steps).

Two sub-commands:

    python -m experiments.reproduce_dmc launch --algos curl rad drq --seeds 1 2 3 --budget 100k [--dry-run]
    python -m experiments.reproduce_dmc table --runs runs/dmc --budget 100k --out experiments/results/dmc_100k.md

``launch`` runs ``python -m curl_agents.train`` for every (algo, task, seed) in turn with the task
presets (action repeat, lr) and ``--resume``, so an interrupted sweep continues where it stopped; extra
flags after ``--`` go to every run (e.g. ``-- --batch-size 128 --device cuda``). ``table`` aggregates
the runs' ``eval.csv`` (score = last evaluation at or before the budget; mean, std and 95% bootstrap CI
over seeds) beside the published CURL, pixel-SAC and state-SAC numbers. Steps are environment steps.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from experiments.aggregate import collect_runs, summarise
from experiments.paper_scores import BUDGET_ENV_STEPS, CURL_TABLE, PLANET_TASKS

PAPER_NAME = {"curl": "CURL", "pixel_sac": "Pixel SAC", "state_sac": "State SAC"}


def run_dir(root: Path, algo: str, task: str, seed: int) -> Path:
    return root / algo / task / f"seed{seed}"


def launch_commands(algos, tasks, seeds, budget: str, root: Path, extra: list[str]) -> list[list[str]]:
    commands = []
    for algo in algos:
        for task in tasks:
            for seed in seeds:
                commands.append(
                    [sys.executable, "-m", "curl_agents.train", "--env", task, "--algo", algo,
                     "--steps", str(BUDGET_ENV_STEPS[budget]), "--seed", str(seed),
                     "--out", str(run_dir(root, algo, task, seed)), *extra]
                )  # fmt: skip
    return commands


def table(root: Path, budget: str) -> str:
    rows = summarise(collect_runs(root, BUDGET_ENV_STEPS[budget]))
    lines = [
        f"# DMC {budget} env-step scores: this suite vs the CURL paper (Table 1)",
        "",
        "| algo | task | seeds | ours mean +- std | ours 95% CI | eval step | paper mean +- std |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = CURL_TABLE[budget].get(PAPER_NAME.get(r["algo"], ""), {}).get(r["env"])
        paper_text = f"{paper[0]} +- {paper[1]}" if paper else "-"
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['algo']} | {r['env']} | {r['n_seeds']} | {r['mean']:.0f} +- {r['std']:.0f} | [{lo:.0f}, {hi:.0f}] "
            f"| {', '.join(f'{s:,}' for s in r['env_steps'])} | {paper_text} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    launch = sub.add_parser("launch", help="run the sweep (sequentially, resumable)")
    launch.add_argument(
        "--algos", nargs="+", default=["curl"], choices=["curl", "rad", "drq", "pixel_sac", "state_sac"]
    )
    launch.add_argument("--tasks", nargs="+", default=list(PLANET_TASKS), choices=list(PLANET_TASKS))
    launch.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    launch.add_argument("--budget", choices=sorted(BUDGET_ENV_STEPS), default="100k")
    launch.add_argument("--runs", type=Path, default=Path("runs/dmc"))
    launch.add_argument("--dry-run", action="store_true", help="print the commands only")
    tab = sub.add_parser("table", help="aggregate finished runs against the paper")
    tab.add_argument("--runs", type=Path, default=Path("runs/dmc"))
    tab.add_argument("--budget", choices=sorted(BUDGET_ENV_STEPS), default="100k")
    tab.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "launch":
        for cmd in launch_commands(args.algos, args.tasks, args.seeds, args.budget, args.runs, extra):
            resume = ["--resume"] if (Path(cmd[cmd.index("--out") + 1]) / "checkpoints").exists() else []
            print(" ".join(cmd + resume), flush=True)
            if not args.dry_run:
                subprocess.run(cmd + resume, check=True)
        return
    text = table(args.runs, args.budget)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
