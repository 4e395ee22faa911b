"""Compare auxiliary objectives under one agent: CURL's SAC with the same augmentation, only ``--aux`` varies.

    python -m experiments.compare_aux --aux none curl byol forward_dynamics --seeds 1 2 3 --steps 100000
    python -m experiments.compare_aux --dry-run ...            # print the training commands only
    python -m experiments.compare_aux --aggregate-only ...     # only (re)build the table and plot

Each (objective, seed) runs ``python -m curl_agents.train --env ENV --algo curl --aux NAME --steps N
--seed S --out RUNS/ENV/NAME/seedS`` in a subprocess, one after another (finished runs, marked by
``summary.json``, are skipped; interrupted ones continue with ``--resume``). Arguments after ``--``
go to every training command unchanged (e.g. ``-- --batch-size 32 --eval-episodes 5``), so all
objectives share every other setting. Steps are ENVIRONMENT steps (see ``curl_agents.train``).

The aggregate is the final evaluation return of each run (the last ``eval.csv`` row at or before
``--steps``), the mean over seeds with a 95% percentile-bootstrap CI over seeds
(``experiments.aggregate.bootstrap_mean_ci``), written to ``OUT.md`` (with provenance) and
``OUT.csv``, and the mean learning curves to ``OUT.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.aggregate import bootstrap_mean_ci, read_eval_csv, score_at_budget
from experiments.provenance import git_commit

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunSpec:
    """One training run of the comparison grid."""

    aux: str
    seed: int
    out: Path
    command: list[str]


def run_dir(runs: Path, env: str, aux: str, seed: int) -> Path:
    return runs / env / aux / f"seed{seed}"


def plan_runs(auxes: list[str], seeds: list[int], env: str, steps: int, runs: Path, extra: list[str]) -> list[RunSpec]:
    """The grid of commands; ``--resume`` is added where an unfinished checkpoint exists."""
    specs = []
    for aux in auxes:
        for seed in seeds:
            out = run_dir(runs, env, aux, seed)
            command = [
                sys.executable,
                "-m",
                "curl_agents.train",
                "--env",
                env,
                "--algo",
                "curl",
                "--aux",
                aux,
                "--steps",
                str(steps),
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--no-progress",
                *extra,
            ]
            if (out / "checkpoints" / "latest").exists() and not (out / "summary.json").exists():
                command.append("--resume")
            specs.append(RunSpec(aux, seed, out, command))
    return specs


def execute(specs: list[RunSpec]) -> None:
    """Run the commands one at a time, skipping finished runs (``summary.json`` present)."""
    for spec in specs:
        if (spec.out / "summary.json").exists():
            print(f"[compare_aux] {spec.aux} seed {spec.seed}: already finished, skipped", flush=True)
            continue
        spec.out.mkdir(parents=True, exist_ok=True)
        print(f"[compare_aux] running: {shlex.join(spec.command)}", flush=True)
        with open(spec.out / "train.log", "a") as log:
            code = subprocess.call(spec.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            print(
                f"[compare_aux] {spec.aux} seed {spec.seed} exited with {code}; see {spec.out / 'train.log'}",
                file=sys.stderr,
                flush=True,
            )


def run_wall_times(specs: list[RunSpec]) -> dict[tuple[str, int], float]:
    """Training wall time of every finished run, as recorded in its ``summary.json``."""
    wall = {}
    for spec in specs:
        path = spec.out / "summary.json"
        if path.exists():
            wall[(spec.aux, spec.seed)] = float(json.loads(path.read_text()).get("wall_time_s", float("nan")))
    return wall


def load_curves(specs: list[RunSpec]) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """``aux -> seed -> [(env_step, mean_return), ...]`` for every run that has an ``eval.csv``."""
    curves: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for spec in specs:
        path = spec.out / "eval.csv"
        if path.exists():
            curves.setdefault(spec.aux, {})[spec.seed] = read_eval_csv(path)
    return curves


def summarise(auxes: list[str], seeds: list[int], curves, steps: int) -> list[dict]:
    """One row per objective: final returns per seed, their mean and 95% bootstrap CI over seeds."""
    rows = []
    for aux in auxes:
        finals, final_steps = [], []
        for seed in seeds:
            hit = score_at_budget(curves.get(aux, {}).get(seed, []), steps)
            if hit is not None:
                final_steps.append(hit[0])
                finals.append(hit[1])
        row = {"aux": aux, "n_seeds": len(finals), "finals": finals, "eval_steps": sorted(set(final_steps))}
        if finals:
            mean, lo, hi = bootstrap_mean_ci(np.array(finals))
            row.update(mean=mean, ci_low=lo, ci_high=hi)
        rows.append(row)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["aux", "n_seeds", "mean_final_return", "ci95_low", "ci95_high", "final_returns", "eval_steps"])
        for r in rows:
            writer.writerow(
                [
                    r["aux"],
                    r["n_seeds"],
                    _fmt(r.get("mean")),
                    _fmt(r.get("ci_low")),
                    _fmt(r.get("ci_high")),
                    " ".join(f"{v:.1f}" for v in r["finals"]),
                    " ".join(map(str, r["eval_steps"])),
                ]
            )


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def plot(curves, auxes: list[str], path: Path, title: str, note: str) -> None:
    """Mean evaluation return over seeds per objective; shaded: min-max over seeds; ``note`` under the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.plot_curves import label_return_axes

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for aux in auxes:
        runs = list(curves.get(aux, {}).values())
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(s for s, _ in run) for run in runs)))
        if not steps:
            continue
        values = np.array([[dict(run)[s] for s in steps] for run in runs])
        line = ax.plot(steps, values.mean(axis=0), marker="o", ms=3, label=f"{aux} (n={len(runs)})")[0]
        if len(runs) > 1:
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.15)
    label_return_axes(ax, title, legend_size=8)
    fig.text(0.01, 0.01, note[:240], fontsize=7, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def provenance(argv: list[str], wall: dict[tuple[str, int], float], label: str) -> list[str]:
    import torch

    commit = git_commit(paths=("curl_agents", "ssl_shared", "experiments/*.py"))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    lines = [
        f"- {label}",
        f"- command: `python -m experiments.compare_aux {shlex.join(argv)}`",
        f"- git commit: {commit}",
        f"- hardware: {os.cpu_count()}-core CPU ({platform.machine()}), {gpu}",
        f"- versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
    ]
    if wall:
        total = sum(wall.values())
        lines.append(
            f"- training wall time (summary.json of each run): {total:.0f} s in all "
            f"({', '.join(f'{a}/s{s}: {t:.0f} s' for (a, s), t in sorted(wall.items()))})"
        )
    return lines


def to_markdown(rows: list[dict], args: argparse.Namespace, extra: list[str], head: list[str]) -> str:
    lines = [
        f"# Auxiliary objectives on {args.env}: final return after {args.steps:,} env steps",
        "",
        *head,
        f"- agent: `--algo curl` (same augmentation for every objective); extra training flags: "
        f"`{shlex.join(extra) or '(none)'}`; seeds {args.seeds}",
        "- statistic: final evaluation return per run; mean over seeds and 95% percentile-bootstrap CI over "
        "seeds (10,000 resamples); with one seed the CI collapses to the value",
        "",
        "| aux | seeds | mean final return | 95% CI | per-seed finals | eval step |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["n_seeds"] == 0:
            lines.append(f"| {r['aux']} | 0 | – | – | – | – |")
            continue
        finals = ", ".join(f"{v:.1f}" for v in r["finals"])
        steps = ", ".join(f"{s:,}" for s in r["eval_steps"])
        lines.append(
            f"| {r['aux']} | {r['n_seeds']} | {r['mean']:.1f} | [{r['ci_low']:.1f}, {r['ci_high']:.1f}] "
            f"| {finals} | {steps} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    from curl_agents.objectives import AUX_OBJECTIVES

    p = argparse.ArgumentParser(prog="python -m experiments.compare_aux", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--aux", nargs="+", default=["none", "curl"], choices=sorted(AUX_OBJECTIVES), help="objectives to compare"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--env", default="cartpole-swingup")
    p.add_argument("--steps", type=int, default=100_000, help="ENV steps per run")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "aux", help="root of the run directories")
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "experiments" / "results" / "aux_comparison",
        help="output prefix: OUT.md, OUT.csv, OUT.png",
    )
    p.add_argument("--label", default="learning runs", help="first provenance line, e.g. 'SMOKE TEST (not a result)'")
    p.add_argument("--dry-run", action="store_true", help="print the training commands and exit")
    p.add_argument("--aggregate-only", action="store_true", help="do not train; aggregate what exists")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = build_parser().parse_args(own)
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    specs = plan_runs(args.aux, args.seeds, args.env, args.steps, args.runs, extra)
    if args.dry_run:
        for spec in specs:
            print(shlex.join(spec.command))
        return
    if not args.aggregate_only:
        execute(specs)
    wall = run_wall_times(specs)
    curves = load_curves(specs)
    rows = summarise(args.aux, args.seeds, curves, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    md = to_markdown(rows, args, extra, provenance(argv, wall, args.label))
    args.out.with_suffix(".md").write_text(md)
    write_csv(rows, args.out.with_suffix(".csv"))
    plot(curves, args.aux, args.out.with_suffix(".png"), f"{args.env}: auxiliary objectives (CURL agent)", args.label)
    print(md)


if __name__ == "__main__":
    main()
