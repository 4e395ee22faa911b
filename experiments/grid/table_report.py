"""Reports of the non-RL grids: image-translation metrics (``cut_translation``) and SSL probe scores.

Both are tables per task (dataset): mean ± population std over seeds of each method's scores, read from
the copied ``eval.json`` (translation: paired L1 / PSNR / SSIM against the ground truth, next to the
identity baseline, and FID / KID when Inception weights were given) or ``probe.json`` (linear-probe
accuracy and k-NN accuracy for class labels, linear-probe R^2 for regression targets).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from experiments.grid.report import Finished, mean_std
from experiments.grid.spec import Plan
from experiments.grid.trainers import Trainer


def table_sections(plan: Plan, trainer: Trainer, finished: list[Finished]) -> list[str]:
    if trainer.report_kind == "translation":
        return translation_tables(plan, finished)
    return probe_tables(plan, finished)


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


def probe_tables(plan: Plan, finished: list[Finished]) -> list[str]:
    lines = []
    for task, methods in _grouped(plan, finished, "probe.json").items():
        sample = next(iter(methods.values()))[0]
        metric = "linear_probe_r2" if "linear_probe_r2" in sample else "linear_probe_accuracy"
        reference = methods.get("random_init")
        ref_mean = sum(r[metric] for r in reference) / len(reference) if reference else None
        lines += [f"## {task}", "", f"Frozen-encoder probe on the test split ({metric}; k-NN accuracy for class "
                  "labels); mean ± population std over seeds, number of seeds.", ""]  # fmt: skip
        lines += ["| method | linear probe | k-NN | mean above random_init? | final training loss |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for method, records in methods.items():
            values = [r[metric] for r in records if metric in r]
            mean = sum(values) / len(values) if values else None
            above = "-" if ref_mean is None or method == "random_init" or mean is None else (
                "yes" if mean > ref_mean else "no")  # fmt: skip
            lines.append(
                f"| {method} | {mean_std(values, 3)} | {mean_std([r['knn_accuracy'] for r in records if 'knn_accuracy' in r], 3)} "
                f"| {above} | {mean_std([r['loss'] for r in records if 'loss' in r], 4)} |"
            )
        lines.append("")
    return lines
