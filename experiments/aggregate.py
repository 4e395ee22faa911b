"""Aggregate evaluation logs of several runs into scores with bootstrap confidence intervals.

A run directory holds ``eval.csv`` with at least the columns ``env_step`` and ``mean_return``
(written by ``python -m curl_agents.train``) and a ``config.json`` naming ``env``, ``algo``, ``aux`` and
``seed``. Runs are grouped by (algo, aux, env); the score of a run at a budget is the evaluation at the
largest ``env_step <= budget``.

Statistics (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"):
- per group: mean over seeds with a 95% percentile-bootstrap CI (resampling seeds);
- across tasks: interquartile mean (IQM) of scores / 1000 with a stratified bootstrap CI (resampling
  seeds within each task).

Usage:
    python -m experiments.aggregate runs/ --budget 100000 --out experiments/results/table.md
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RunScore:
    algo: str
    aux: str
    env: str
    seed: int
    env_step: int
    score: float


def read_eval_csv(path: Path) -> list[tuple[int, float]]:
    """``(env_step, mean_return)`` rows of one ``eval.csv``, sorted by step."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"env_step", "mean_return"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}; found {reader.fieldnames}")
        rows = [(int(float(r["env_step"])), float(r["mean_return"])) for r in reader]
    return sorted(rows)


def score_at_budget(rows: list[tuple[int, float]], budget: int) -> tuple[int, float] | None:
    """The last evaluation at or before ``budget`` env steps (None when there is none)."""
    eligible = [r for r in rows if r[0] <= budget]
    return eligible[-1] if eligible else None


def collect_runs(root: Path, budget: int) -> list[RunScore]:
    scores = []
    for eval_path in sorted(root.rglob("eval.csv")):
        config_path = eval_path.parent / "config.json"
        if not config_path.exists():
            continue
        config = json.loads(config_path.read_text())
        hit = score_at_budget(read_eval_csv(eval_path), budget)
        if hit is None:
            continue
        scores.append(
            RunScore(
                algo=str(config.get("algo", "?")),
                aux=str(config.get("aux", "none")),
                env=str(config.get("env", "?")),
                seed=int(config.get("seed", 0)),
                env_step=hit[0],
                score=hit[1],
            )
        )
    return scores


def bootstrap_mean_ci(
    values: np.ndarray, reps: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap CI of the mean (resampling the values with replacement)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("cannot bootstrap an empty set of values")
    rng = np.random.default_rng(seed)
    resamples = rng.choice(values, size=(reps, values.size), replace=True).mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(values.mean()), float(np.quantile(resamples, alpha)), float(np.quantile(resamples, 1 - alpha))


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of values (scipy.stats.trim_mean(x, 0.25))."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    n = x.size
    if n == 0:
        raise ValueError("cannot take the IQM of an empty set")
    cut = int(np.floor(0.25 * n))
    return float(x[cut : n - cut].mean())


def stratified_bootstrap_iqm(
    scores_by_task: dict[str, np.ndarray], reps: int = 5_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """IQM over all (task, seed) scores with a CI that resamples seeds within each task."""
    rng = np.random.default_rng(seed)
    point = iqm(np.concatenate(list(scores_by_task.values())))
    stats = np.empty(reps)
    for r in range(reps):
        stats[r] = iqm(np.concatenate([rng.choice(v, size=v.size, replace=True) for v in scores_by_task.values()]))
    alpha = (1 - confidence) / 2
    return point, float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def summarise(scores: list[RunScore]) -> list[dict]:
    groups: dict[tuple[str, str, str], list[RunScore]] = defaultdict(list)
    for s in scores:
        groups[(s.algo, s.aux, s.env)].append(s)
    rows = []
    for (algo, aux, env), runs in sorted(groups.items()):
        values = np.array([r.score for r in runs])
        mean, lo, hi = bootstrap_mean_ci(values)
        rows.append(
            {
                "algo": algo,
                "aux": aux,
                "env": env,
                "n_seeds": len(runs),
                "mean": mean,
                "std": float(values.std(ddof=0)),
                "ci95": (lo, hi),
                "env_steps": sorted({r.env_step for r in runs}),
            }
        )
    return rows


def to_markdown(rows: list[dict], budget: int) -> str:
    lines = [
        f"Scores at <= {budget:,} env steps (mean over seeds, population std, 95% bootstrap CI of the mean)",
        "",
        "| algo | aux | env | seeds | mean | std | 95% CI | eval step(s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["ci95"]
        steps = ", ".join(f"{s:,}" for s in r["env_steps"])
        lines.append(
            f"| {r['algo']} | {r['aux']} | {r['env']} | {r['n_seeds']} | {r['mean']:.1f} | {r['std']:.1f} "
            f"| [{lo:.1f}, {hi:.1f}] | {steps} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder searched recursively for eval.csv + config.json")
    parser.add_argument("--budget", type=int, default=100_000, help="env-step budget (default 100000)")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        raise SystemExit(f"error: run folder {args.root} does not exist")
    rows = summarise(collect_runs(args.root, args.budget))
    if not rows:
        raise SystemExit(f"error: no run under {args.root} has an evaluation at <= {args.budget} env steps")
    text = to_markdown(rows, args.budget)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
