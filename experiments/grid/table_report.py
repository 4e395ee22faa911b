"""Reports of the non-RL grids: image-translation metrics (``cut_translation``) and SSL probe scores.

Both are tables per task (dataset): mean ± population std over seeds of each method's scores, read from
the copied ``eval.json`` (translation: paired L1 / PSNR / SSIM against the ground truth, next to the
identity baseline, and FID / KID when Inception weights were given) or ``probe.json`` (linear-probe
accuracy and k-NN accuracy for class labels, linear-probe R^2 for regression targets).

Probe reports add, per task, every score of :data:`PROBE_SCORES` the runs wrote with its mean over seeds
and a 95% Student-t confidence interval (``mean ± t_{0.975, n-1} s / sqrt(n)``, ``s`` the sample std), the
probability of improvement over the grid's ``[report] baseline`` method (``P(X > Y)``, the Mann-Whitney
statistic over seeds, with a 95% stratified-bootstrap interval from rliable; Agarwal et al. 2021,
arXiv 2108.13264) and, when the runs recorded ``r2_per_dimension``, the mean R^2 of each target dimension.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np

from experiments.grid.report import Finished, ReportOptions, mean_std, seeded_numpy
from experiments.grid.spec import Plan
from experiments.grid.trainers import Trainer

#: Scores of ``probe.json`` the probe report gives intervals for, with what they measure.
PROBE_SCORES = {
    "linear_probe_r2": "R^2 of the state (at t, for transition data)",
    "linear_probe_r2_next": "R^2 of the next state (t + 1) from o_t",
    "linear_probe_accuracy": "linear-probe accuracy",
    "knn_accuracy": "k-NN accuracy",
}


def table_sections(plan: Plan, trainer: Trainer, finished: list[Finished], options: ReportOptions) -> list[str]:
    if trainer.report_kind == "translation":
        return translation_tables(plan, finished)
    return probe_tables(plan, finished, options)


def _grouped(plan: Plan, finished: list[Finished], filename: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``task -> method -> [record per seed]`` in plan order."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for f in finished:
        groups[f.task][f.method].append(json.loads((f.folder / filename).read_text()))
    return groups


def translation_tables(plan: Plan, finished: list[Finished]) -> list[str]:
    lines = []
    for task, methods in _grouped(plan, finished, "eval.json").items():
        lines += [f"## {task}", "", "Paired test metrics of G(testA) against the true testB images (images in "
                  "[0, 1]; mean ± population std over seeds, number of seeds).", ""]  # fmt: skip
        head = "| method | iterations | L1 (lower is better) | PSNR dB | SSIM | FID | KID |"
        lines += [head, "|---|---|---|---|---|---|---|"]
        identity = None
        for method, records in methods.items():
            paired = [r["paired"] for r in records if isinstance(r.get("paired"), dict)]
            fid = [r["fid_kid"] for r in records if isinstance(r.get("fid_kid"), dict)]
            identity = identity or (paired[0] if paired else None)
            iterations = sorted({int(r["iteration"]) for r in records})
            lines.append(
                f"| {method} | {', '.join(f'{i:,}' for i in iterations)} | "
                f"{mean_std([p['l1'] for p in paired], 4)} | {mean_std([p['psnr'] for p in paired], 2)} | "
                f"{mean_std([p['ssim'] for p in paired], 4)} | {mean_std([x['fid'] for x in fid if 'fid' in x], 2)} | "
                f"{mean_std([x['kid'] for x in fid if 'kid' in x], 4)} |"
            )
        if identity is not None:
            lines.append(f"| identity (testA as the output) | - | {identity['identity_l1']:.4f} | "
                         f"{identity['identity_psnr']:.2f} | {identity['identity_ssim']:.4f} | - | - |")  # fmt: skip
        else:
            lines.append("| (no paired ground truth: testA and testB file names do not pair up) | | | | | | |")
        lines.append("")
    return lines


def probe_tables(plan: Plan, finished: list[Finished], options: ReportOptions) -> list[str]:
    lines = []
    baseline = plan.grid.report.baseline or "random_init"
    for task, methods in _grouped(plan, finished, "probe.json").items():
        sample = next(iter(methods.values()))[0]
        metric = "linear_probe_r2" if "linear_probe_r2" in sample else "linear_probe_accuracy"
        reference = methods.get(baseline)
        ref_mean = sum(r[metric] for r in reference) / len(reference) if reference else None
        lines += [f"## {task}", "", f"Frozen-encoder probe on the test split ({metric}; k-NN accuracy for class "
                  "labels); mean ± population std over seeds, number of seeds.", ""]  # fmt: skip
        lines += [f"| method | linear probe | k-NN | mean above {baseline}? | final training loss |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for method, records in methods.items():
            values = [r[metric] for r in records if metric in r]
            mean = sum(values) / len(values) if values else None
            above = "-" if ref_mean is None or method == baseline or mean is None else (
                "yes" if mean > ref_mean else "no")  # fmt: skip
            lines.append(
                f"| {method} | {mean_std(values, 3)} | {mean_std([r['knn_accuracy'] for r in records if 'knn_accuracy' in r], 3)} "
                f"| {above} | {mean_std([r['loss'] for r in records if 'loss' in r], 4)} |"
            )
        lines.append("")
        lines += interval_table(methods, plan.grid.report.baseline, options)
        lines += per_dimension_table(methods)
    return lines


def t_interval(values: list[float]) -> tuple[float, float, float] | None:
    """``(mean, low, high)``: the 95% Student-t interval of the mean; None for fewer than two values."""
    from scipy import stats

    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / np.sqrt(arr.size)
    return float(arr.mean()), float(arr.mean() - half), float(arr.mean() + half)


def improvement_probability(x: list[float], y: list[float], options: ReportOptions) -> tuple[float, float, float]:
    """``P(X > Y)`` over seeds (ties count one half) and its 95% bootstrap interval (rliable)."""
    from rliable import library as rly
    from rliable import metrics

    runs_x, runs_y = np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float)[:, None]
    with seeded_numpy(options.seed):
        point, interval = rly.get_interval_estimates(
            {"x": [runs_x, runs_y]}, metrics.probability_of_improvement, reps=options.curve_reps
        )
    low, high = np.asarray(interval["x"], dtype=float).ravel()
    return float(point["x"]), float(low), float(high)


def interval_table(methods: dict[str, list[dict[str, Any]]], baseline: str | None, options: ReportOptions) -> list[str]:
    """Each score's mean with its 95% t-interval and, against ``baseline``, the probability of improvement."""
    scores = [k for k in PROBE_SCORES if any(k in r for records in methods.values() for r in records)]
    reference = methods.get(baseline) if baseline else None
    if not scores:
        return []
    head, rule = ["method", "seeds"], ["---", "---"]
    for key in scores:
        head.append(f"{key} mean [95% CI]")
        rule.append("---")
        if reference:
            head.append(f"P(> {baseline}) [95% CI]")
            rule.append("---")
    text = "; ".join(f"`{k}`: {PROBE_SCORES[k]}" for k in scores)
    lines = [f"Means over seeds with 95% Student-t intervals ({text})"]
    if reference:
        lines[0] += (f"; probability of improvement over `{baseline}`: P(method > {baseline}) over seeds, "
                     f"95% stratified-bootstrap interval ({options.curve_reps:,} resamples, numpy seed {options.seed})")  # fmt: skip
    lines[0] += "."
    lines += ["", "| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    for method, records in methods.items():
        row = [method, str(len(records))]
        for key in scores:
            values = [float(r[key]) for r in records if key in r]
            ci = t_interval(values)
            row.append(f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]" if ci else (f"{values[0]:.3f}" if values else "-"))
            if reference:
                base = [float(r[key]) for r in reference if key in r]
                if method == baseline or not values or not base:
                    row.append("-")
                else:
                    p, low, high = improvement_probability(values, base, options)
                    row.append(f"{p:.2f} [{low:.2f}, {high:.2f}]")
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def per_dimension_table(methods: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Mean over seeds of each target dimension's R^2 (``r2_per_dimension`` in ``probe.json``)."""
    targets: dict[str, int] = {}
    for records in methods.values():
        for r in records:
            for name, values in (r.get("r2_per_dimension") or {}).items():
                targets[name] = max(targets.get(name, 0), len(values))
    lines = []
    for name, dims in targets.items():
        lines += [f"Mean R^2 of each dimension of `{name}` over seeds:", "",
                  "| method | " + " | ".join(f"dim {j}" for j in range(dims)) + " |", "|---|" + "---|" * dims]  # fmt: skip
        for method, records in methods.items():
            cells = []
            for j in range(dims):
                values = [v for r in records for v in [(r.get("r2_per_dimension") or {}).get(name, [None] * dims)[j]]
                          if v is not None]  # fmt: skip
                cells.append(f"{np.mean(values):.3f}" if values else "-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
