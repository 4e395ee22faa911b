"""Learning parity of CURL's speed options: final returns of the ``curl_parity`` grid beside fp32 runs.

    python -m experiments.grid report curl_parity
    python -m experiments.curl_parity --scores experiments/results/curl_parity/scores.csv \\
        --fp32 experiments/results/curl_b32_s*_eval.csv --out experiments/results/curl_parity_vs_fp32

Every group of runs (the grid's variants, e.g. ``bf16`` and ``bf16_fused``, and the fp32 runs given by their
``eval.csv`` files) is summarised by its mean final return over seeds with a 95% percentile-bootstrap interval
(seeds resampled), and each variant is compared with fp32 by the difference of the means with its own 95%
bootstrap interval (both groups resampled independently). Verdict per variant: *within the fp32 spread* when
that interval contains 0, else *higher* or *lower than fp32*. With a few seeds per group the percentile
interval is narrow-biased; read the verdict as a screen, not a test. A run's score is its own last evaluation at the budget.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.aggregate import bootstrap_mean_ci, final_score, read_eval_csv
from ssl_shared.provenance import REPO, git_commit, relative_command

REFERENCE = "fp32"


def difference_ci(
    variant: Sequence[float], reference: Sequence[float], reps: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """``mean(variant) - mean(reference)`` and its 95% percentile-bootstrap interval (each group resampled
    with replacement on its own)."""
    a, b = np.asarray(variant, dtype=float), np.asarray(reference, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("both groups need at least one run")
    rng = np.random.default_rng(seed)
    diffs = rng.choice(a, (reps, a.size)).mean(axis=1) - rng.choice(b, (reps, b.size)).mean(axis=1)
    return float(a.mean() - b.mean()), float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


def read_grid_scores(path: Path) -> dict[str, list[float]]:
    """``{method: [score per seed]}`` from a grid report's ``scores.csv``."""
    groups: dict[str, list[float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            groups.setdefault(row["method"], []).append(float(row["score"]))
    return groups


def summarize(groups: Mapping[str, Sequence[float]], reps: int = 10_000) -> dict:
    """Per group: seeds, scores, mean and CI; per variant: the difference to ``fp32`` with its CI and verdict."""
    out: dict = {"groups": {}, "versus_fp32": {}}
    for name, scores in groups.items():
        mean, lo, hi = bootstrap_mean_ci(np.asarray(scores), reps=reps)
        out["groups"][name] = {"scores": list(scores), "n": len(scores), "mean": mean, "ci95": [lo, hi]}
    for name, scores in groups.items():
        if name == REFERENCE:
            continue
        diff, lo, hi = difference_ci(scores, groups[REFERENCE], reps=reps)
        verdict = "within the fp32 spread" if lo <= 0.0 <= hi else "higher than fp32" if lo > 0 else "lower than fp32"
        out["versus_fp32"][name] = {"difference": diff, "ci95": [lo, hi], "verdict": verdict}
    return out


def markdown(summary: Mapping, provenance: Mapping) -> str:
    lines = [
        "# CURL learning parity: bf16 and the fused encoder step against fp32",
        "",
        f"Command: `{provenance['command']}`  ",
        f"Commit: {provenance['commit']}; fp32 runs: {', '.join(provenance['fp32_files'])}",
        "",
        "Final return of each run (its own last evaluation at 100K env steps, 10 episodes); mean over seeds with a "
        "95% percentile-bootstrap interval (10,000 resamples of the seeds).",
        "",
        "| runs | seeds | final returns | mean | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for name, g in summary["groups"].items():
        scores = ", ".join(f"{s:.1f}" for s in g["scores"])
        lines.append(f"| {name} | {g['n']} | {scores} | {g['mean']:.1f} | [{g['ci95'][0]:.1f}, {g['ci95'][1]:.1f}] |")
    lines += [
        "",
        "Difference of the means to fp32, with a 95% bootstrap interval (both groups resampled):",
        "",
        "| runs | mean - fp32 mean | 95% CI | verdict |",
        "|---|---|---|---|",
    ]
    for name, v in summary["versus_fp32"].items():
        lines.append(
            f"| {name} | {v['difference']:+.1f} | [{v['ci95'][0]:+.1f}, {v['ci95'][1]:+.1f}] | {v['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.curl_parity", description=__doc__.split("\n")[0])
    p.add_argument("--scores", type=Path, required=True, help="scores.csv of `experiments.grid report curl_parity`")
    p.add_argument("--fp32", type=Path, nargs="+", required=True, help="eval.csv files of the fp32 runs")
    p.add_argument("--budget", type=int, default=100_000, help="env steps of the final evaluation")
    p.add_argument("--out", type=Path, required=True, help="result path without suffix (.md and .json written)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    groups = read_grid_scores(args.scores)
    groups[REFERENCE] = [final_score(read_eval_csv(path), args.budget, path)[1] for path in args.fp32]
    summary = summarize(groups)
    provenance = {
        "command": relative_command([sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
        "commit": git_commit(),
        "fp32_files": [
            str(p.resolve().relative_to(REPO)) if p.resolve().is_relative_to(REPO) else p.name for p in args.fp32
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({**summary, "provenance": provenance}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(summary, provenance))
    print(args.out.with_suffix(".md").read_text(), end="")


if __name__ == "__main__":
    main()
