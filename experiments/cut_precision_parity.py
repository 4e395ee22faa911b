"""Learning parity of bf16 and fp32 training for CUT: equal iterations, same seeds, paired test metrics.

    nice -n 10 python -m experiments.cut_precision_parity --data data/dmc-restyle-64 --iters 4000 --seeds 0 1 \\
        --runs runs/cut_precision_parity --out experiments/results/cut_precision_parity

Make the data with ``MUJOCO_GL=egl scv-dmc-restyle --out data/dmc-restyle-64 --size 64 --train 1000 --test 200
--seed 0``. For every seed, one ``scv-cut-train`` run per precision (``--precision fp32`` and ``bf16``), one run
at a time, on the reduced CPU networks of ``experiments/grids/cut_table.toml``'s ``cpu`` protocol (ngf 16,
6 residual blocks, ndf 32, load 72, crop 64) and the paper's learning-rate schedule (constant, then linear
decay, in equal halves) laid over ``--iters``. Every checkpoint is then scored by ``scv-cut-evaluate`` on the
test split (paired L1 / PSNR / SSIM against the ground-truth renders, with the identity baseline) twice:
with fp32 inference, so that the training precision is the only difference, and with bf16 inference.

Verdict: bf16 matches fp32 when, for every metric (fp32 inference), the difference between the two
precisions' means over seeds is at most the seed-to-seed spread, the larger of the two precisions' ranges
(max - min over seeds). With one seed there is no spread and no verdict.

Wall time and CPU time (user + system of the training process) are recorded per run. A run folder that
already holds a finished run of the same settings is not trained again (its recorded times are kept),
so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssl_shared.provenance import REPO, hardware, hardware_line, package_versions, relative_command

PRECISIONS = ("fp32", "bf16")
METRICS = ("l1", "psnr", "ssim")  # lower L1 is better; higher PSNR and SSIM are better
#: The reduced CPU networks and image sizes of experiments/grids/cut_table.toml's cpu protocol.
RECIPE = ["--ngf", "16", "--n-blocks", "6", "--ndf", "32", "--load-size", "72", "--crop-size", "64"]
CODE_PATHS = ("cut_translation", "ssl_shared", "experiments/cut_precision_parity.py")
TIMING_FILE = "parity_timing.json"


def train_argv(data: str, out: Path, seed: int, precision: str, iters: int, threads: int) -> list[str]:
    """The ``scv-cut-train`` command line of one run."""
    return [
        *("-m", "cut_translation", "train", "--model", "cut", "--data", data, "--out", str(out)),
        *("--iters", str(iters), "--seed", str(seed), "--precision", precision, "--device", "cpu"),
        *("--threads", str(threads), "--log-every", "100", "--sample-every", "1000", "--checkpoint-every", "1000"),
        *RECIPE,
    ]


def evaluate_argv(data: str, run: Path, precision: str, threads: int) -> list[str]:
    """The ``scv-cut-evaluate`` command line scoring ``run`` with ``precision`` inference."""
    return [
        *("-m", "cut_translation", "evaluate", "--checkpoint", str(run), "--data", data, "--device", "cpu"),
        *("--precision", precision, "--threads", str(threads), "--json", str(run / f"eval_{precision}.json")),
    ]


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_python(argv: Sequence[str], log: Path) -> tuple[float, float]:
    """Run ``python ARGV`` from the repository root (this checkout's packages first), its output to ``log``;
    returns (wall s, CPU s)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cpu, wall = child_cpu_seconds(), time.perf_counter()
    with log.open("w") as out:
        subprocess.run([sys.executable, *argv], cwd=REPO, env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
    return time.perf_counter() - wall, child_cpu_seconds() - cpu


def finished(run: Path, iters: int) -> bool:
    """``run`` holds a finished run of ``iters`` iterations whose times were recorded."""
    summary = run / "summary.json"
    return (
        summary.is_file() and json.loads(summary.read_text())["iterations"] == iters and (run / TIMING_FILE).is_file()
    )


def train_and_score(args: argparse.Namespace, seed: int, precision: str) -> dict[str, Any]:
    run = Path(args.runs) / f"{precision}_seed{seed}"
    run.parent.mkdir(parents=True, exist_ok=True)

    def log(phase: str) -> Path:
        return run.parent / f"{run.name}_{phase}.log"

    if not finished(run, args.iters):
        if run.exists():
            raise SystemExit(f"error: {run} holds an unfinished or different run; remove it or choose other --runs")
        wall, cpu = run_python(train_argv(args.data, run, seed, precision, args.iters, args.threads), log("train"))
        (run / TIMING_FILE).write_text(json.dumps({"wall_s": wall, "cpu_s": cpu}) + "\n")
    timing = json.loads((run / TIMING_FILE).read_text())
    config = json.loads((run / "config.json").read_text())
    scores = {}
    for inference in PRECISIONS:
        run_python(evaluate_argv(args.data, run, inference, args.threads), log(f"evaluate_{inference}"))
        scores[inference] = json.loads((run / f"eval_{inference}.json").read_text())["paired"]
    return {
        "seed": seed,
        "precision": precision,
        "recorded_precision": config["train"]["precision"],
        "iterations": json.loads((run / "summary.json").read_text())["iterations"],
        "wall_s": round(timing["wall_s"], 1),
        "cpu_s": round(timing["cpu_s"], 1),
        "run_folder": str(run),
        "paired_fp32_inference": scores["fp32"],
        "paired_bf16_inference": scores["bf16"],
    }


def summarize(runs: Sequence[Mapping[str, Any]], key: str = "paired_fp32_inference") -> dict[str, Any]:
    """Per precision and metric: mean, min, max, range over seeds; per metric the difference of the means
    (bf16 - fp32), the spread (the larger range) and whether the difference lies within it."""
    by_precision = {p: [r[key] for r in runs if r["precision"] == p] for p in PRECISIONS}
    stats = {
        p: {
            m: {
                "mean": statistics.fmean(s[m] for s in scores),
                "min": min(s[m] for s in scores),
                "max": max(s[m] for s in scores),
                "range": max(s[m] for s in scores) - min(s[m] for s in scores),
            }
            for m in METRICS
        }
        for p, scores in by_precision.items()
        if scores
    }
    seeds = min(len(v) for v in by_precision.values())
    comparison = {}
    if len(stats) == 2:
        for m in METRICS:
            difference = stats["bf16"][m]["mean"] - stats["fp32"][m]["mean"]
            spread = max(stats["bf16"][m]["range"], stats["fp32"][m]["range"])
            comparison[m] = {
                "difference_bf16_minus_fp32": difference,
                "seed_spread": spread,
                "within_spread": abs(difference) <= spread if seeds >= 2 else None,
            }
    within = [c["within_spread"] for c in comparison.values()]
    verdict = None if not within or None in within else all(within)
    return {"per_precision": stats, "comparison": comparison, "seeds_per_precision": seeds, "bf16_matches": verdict}


def verdict_line(summary: Mapping[str, Any]) -> str:
    if summary["bf16_matches"] is None:
        return "No verdict: a seed-to-seed spread needs at least two seeds per precision."
    if summary["bf16_matches"]:
        return (
            "bf16 matches fp32: for L1, PSNR and SSIM the difference of the means lies within the seed-to-seed spread."
        )
    outside = [m for m, c in summary["comparison"].items() if not c["within_spread"]]
    return f"bf16 does NOT match fp32 within the seed-to-seed spread for: {', '.join(outside)}."


def markdown(result: Mapping[str, Any]) -> str:
    p, s = result["provenance"], result["settings"]
    lines = [
        "# CUT learning parity: bf16 vs fp32 training",
        "",
        f"Command (from the repository root, under `nice -n 10`): `{p['command']}`  ",
        f"Commit: {p['git_commit']}  ",
        f"Hardware: {hardware_line(p['hardware'])}; load average at the start {p['hardware']['load_average_1_5_15']}, "
        f"at the end {p['load_average_end']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in p["versions"].items()) + "  ",
        f"Date: {p['started_at']} to {p['finished_at']}",
        "",
        f"CUT on `{s['data']}`, {s['iterations']} iterations, batch 1, seeds {s['seeds']}, "
        f"{s['threads']} torch thread(s), one run at a time; networks and sizes: `{' '.join(s['recipe'])}`; the "
        "paper's schedule (constant, then linear decay, in equal halves) over the iterations. Metrics: "
        f"`scv-cut-evaluate` on the {result['runs'][0]['paired_fp32_inference']['n']:.0f} test pairs, images in "
        "[0, 1]. Wall and CPU times were measured on a shared, loaded machine: they say how long the runs took "
        "here, not how fast either precision is (see `benchmarks/cut_throughput.py --ours-precisions`).",
        "",
        "| training precision | seed | L1 | PSNR dB | SSIM | PSNR dB, bf16 inference | SSIM, bf16 inference | "
        "wall min | CPU min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        a, b = r["paired_fp32_inference"], r["paired_bf16_inference"]
        lines.append(
            f"| {r['precision']} | {r['seed']} | {a['l1']:.4f} | {a['psnr']:.2f} | {a['ssim']:.4f} | "
            f"{b['psnr']:.2f} | {b['ssim']:.4f} | {r['wall_s'] / 60:.1f} | {r['cpu_s'] / 60:.1f} |"
        )
    ident = result["runs"][0]["paired_fp32_inference"]
    lines += [
        f"| identity (output = input) | - | {ident['identity_l1']:.4f} | {ident['identity_psnr']:.2f} | "
        f"{ident['identity_ssim']:.4f} | | | | |",
        "",
        "Columns L1 / PSNR / SSIM: fp32 inference. Over seeds (fp32 inference), mean [min, max]:",
        "",
        "| metric | fp32 | bf16 | bf16 - fp32 | seed-to-seed spread | within spread |",
        "|---|---|---|---|---|---|",
    ]
    summary = result["summary"]
    for m in METRICS:
        cells = []
        for precision in PRECISIONS:
            st = summary["per_precision"].get(precision, {}).get(m)
            cells.append(f"{st['mean']:.4f} [{st['min']:.4f}, {st['max']:.4f}]" if st else "-")
        c = summary["comparison"].get(m)
        tail = (
            f"{c['difference_bf16_minus_fp32']:+.4f} | {c['seed_spread']:.4f} | "
            f"{'-' if c['within_spread'] is None else 'yes' if c['within_spread'] else 'no'}"
            if c
            else "- | - | -"
        )
        lines.append(f"| {m} | {cells[0]} | {cells[1]} | {tail} |")
    lines += ["", f"**{verdict_line(summary)}**", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="dmc-restyle dataset root (trainA/B, testA/B with pairs)")
    p.add_argument("--iters", type=int, default=4000, help="training iterations of every run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=1, help="torch threads of every run")
    p.add_argument("--runs", default="runs/cut_precision_parity", help="folder of the run folders")
    p.add_argument("--out", default="experiments/results/cut_precision_parity", help="result path without suffix")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import torch

    from ssl_shared.provenance import git_commit

    torch.set_num_threads(args.threads)  # the hardware record then shows the runs' thread count
    provenance = {
        "command": relative_command([sys.argv[0], *argv]),
        "git_commit": git_commit(paths=CODE_PATHS),
        "versions": package_versions(["torch", "numpy"]),
        "hardware": hardware(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    runs = []
    for seed in args.seeds:
        for precision in PRECISIONS:
            runs.append(train_and_score(args, seed, precision))
            print(json.dumps({k: runs[-1][k] for k in ("seed", "precision", "wall_s", "cpu_s")}), flush=True)
    provenance.update(
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), load_average_end=[round(x, 2) for x in os.getloadavg()]
    )
    result = {
        "study": "cut_precision_parity",
        "settings": {
            "data": args.data,
            "model": "cut",
            "iterations": args.iters,
            "seeds": args.seeds,
            "threads": args.threads,
            "recipe": RECIPE,
        },
        "provenance": provenance,
        "runs": runs,
        "summary": summarize(runs),
        "summary_bf16_inference": summarize(runs, "paired_bf16_inference"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(verdict_line(result["summary"]))


if __name__ == "__main__":
    main()
