"""Plot learning curves (mean over seeds, shaded 95% bootstrap CI) from runs' ``eval.csv`` files.

Usage:
    python -m experiments.plot_curves runs/ --out experiments/results/curves.png [--paper 100k]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.aggregate import bootstrap_mean_ci, read_eval_csv  # noqa: E402
from experiments.paper_scores import BUDGET_ENV_STEPS, CURL_TABLE  # noqa: E402


def load_curves(root: Path) -> dict[tuple[str, str], dict[str, list[list[tuple[int, float]]]]]:
    """``{(env, label): {"runs": [[(step, return), ...], ...]}}`` for every run under ``root``."""
    curves: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: {"runs": []})
    for eval_path in sorted(root.rglob("eval.csv")):
        config_path = eval_path.parent / "config.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        label = f"{config.get('algo', '?')}/{config.get('aux', 'none')}"
        rows = read_eval_csv(eval_path)
        if rows:
            curves[(str(config.get("env", eval_path.parent.name)), label)]["runs"].append(rows)
    return curves


def label_return_axes(ax, title: str, legend_size: float = 7) -> None:
    """Title, axis labels, grid and legend of an evaluation-return vs environment-steps plot."""
    ax.set_title(title)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def plot(curves, out: Path, paper_budget: str | None = None) -> None:
    envs = sorted({env for env, _ in curves})
    if not envs:
        raise ValueError("no eval.csv found")
    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.5), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for (e, label), data in sorted(curves.items()):
            if e != env:
                continue
            steps = sorted({s for run in data["runs"] for s, _ in run})
            means, lows, highs, xs = [], [], [], []
            for s in steps:
                values = [dict(run)[s] for run in data["runs"] if s in dict(run)]
                m, lo, hi = bootstrap_mean_ci(np.array(values), reps=2000)
                xs.append(s)
                means.append(m)
                lows.append(lo)
                highs.append(hi)
            n = len(data["runs"])
            ax.plot(xs, means, marker="o", ms=3, label=f"{label} (n={n})")
            ax.fill_between(xs, lows, highs, alpha=0.2)
        if paper_budget and env in CURL_TABLE[paper_budget]["CURL"]:
            mean, std = CURL_TABLE[paper_budget]["CURL"][env]
            ax.errorbar([BUDGET_ENV_STEPS[paper_budget]], [mean], yerr=[std], fmt="k*", label="CURL paper")
        label_return_axes(ax, env)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--out", type=Path, default=Path("curves.png"))
    parser.add_argument("--paper", choices=sorted(CURL_TABLE), default=None, help="overlay the CURL paper score")
    args = parser.parse_args(argv)
    plot(load_curves(args.root), args.out, args.paper)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
