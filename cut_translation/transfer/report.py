"""Stage 4 of a transfer run: sample grids, the returns table and chart, and ``report.md``.

* :func:`sample_grid`: rows of test states, columns ``target look | translated | training look`` (the same
  physics state rendered in both looks), as a PNG;
* :func:`summarize`: per condition the mean return over agents and episodes with its 95% interval, and the
  share of the training-look return it keeps (paired; :mod:`cut_translation.transfer.stats`);
* :func:`plot_returns` and :func:`write_markdown`: ``returns.png`` and ``report.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cut_translation.transfer.evaluation import ConditionResult
from cut_translation.transfer.stats import bootstrap_mean, bootstrap_share

TRAIN_LOOK = "train look"
TARGET_LOOK = "target look"
BASELINE_PREFIX = "baseline: "


def translated_condition(model: str) -> str:
    return f"target look + {model}"


def baseline_condition(condition: str) -> str:
    return BASELINE_PREFIX + condition


def reference_of(condition: str) -> str:
    """The condition whose return a condition's share is taken of: the same agents in their training look."""
    return baseline_condition(TRAIN_LOOK) if condition.startswith(BASELINE_PREFIX) else TRAIN_LOOK


def returns_array(results: Sequence[ConditionResult], condition: str) -> np.ndarray:
    """``(agents, episodes)`` returns of ``condition`` in the order the results are given."""
    rows = [r.returns for r in results if r.condition == condition]
    return np.asarray(rows, dtype=np.float64)


def summarize(results: Sequence[ConditionResult], conditions: Sequence[str], n: int, seed: int) -> list[dict[str, Any]]:
    """One row per condition: agents, episodes, mean + interval, share of the reference + interval, timings."""
    rows = []
    for condition in conditions:
        values = returns_array(results, condition)
        reference = returns_array(results, reference_of(condition))
        mine = [r for r in results if r.condition == condition]
        row: dict[str, Any] = {
            "condition": condition,
            "agents": int(values.shape[0]),
            "episodes": int(values.shape[1]),
            "return": bootstrap_mean(values, n, seed).to_dict(),
            "share": bootstrap_share(values, reference, n, seed).to_dict(),
            "per_agent_mean": [float(np.mean(r.returns)) for r in mine],
            "step_ms": _weighted([r.step_ms for r in mine], [r.agent_steps for r in mine]),
            "sim_render_ms": _weighted([r.sim_render_ms for r in mine], [r.agent_steps for r in mine]),
            "policy_ms": _weighted([r.policy_ms for r in mine], [r.agent_steps for r in mine]),
            "translate_ms": _weighted([r.translate_ms for r in mine], [r.agent_steps for r in mine]),
        }
        rows.append(row)
    return rows


def _weighted(values: Sequence[float | None], weights: Sequence[int]) -> float | None:
    pairs = [(v, w) for v, w in zip(values, weights) if v is not None and math.isfinite(v)]
    if not pairs:
        return None
    return float(sum(v * w for v, w in pairs) / max(1, sum(w for _, w in pairs)))


# ----------------------------------------------------------------------------------------------------- images


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def sample_grid(
    inputs: torch.Tensor, translated: torch.Tensor, truth: torch.Tensor, path: Path, gap: int = 2
) -> np.ndarray:
    """Save rows ``input | translated | training look`` (tensors (N, 3, H, W) in [-1, 1]) as one PNG; returns it."""
    from PIL import Image

    n, _, h, w = inputs.shape
    grid = np.full((n * h + (n - 1) * gap, 3 * w + 2 * gap, 3), 255, np.uint8)
    for i in range(n):
        for j, images in enumerate((inputs, translated, truth)):
            top, left = i * (h + gap), j * (w + gap)
            grid[top : top + h, left : left + w] = to_uint8_hwc(images[i])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return grid


def plot_returns(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """Bar per condition (mean, 95% interval), dots for the agents' own means, a line at the training-look mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(rows), 3.6), dpi=120)
    xs = np.arange(len(rows))
    means = [r["return"]["value"] for r in rows]
    errors = np.array(
        [[r["return"]["value"] - r["return"]["low"], r["return"]["high"] - r["return"]["value"]] for r in rows]
    ).T
    colours = [
        "tab:green"
        if r["condition"].endswith(TRAIN_LOOK)
        else "tab:red"
        if r["condition"].endswith(TARGET_LOOK)
        else "tab:blue"
        for r in rows
    ]
    ax.bar(xs, means, yerr=errors, capsize=4, color=colours, alpha=0.75)
    for x, r in zip(xs, rows):
        ax.scatter([x] * len(r["per_agent_mean"]), r["per_agent_mean"], color="black", s=10, zorder=3)
    train = next((r for r in rows if r["condition"] == TRAIN_LOOK), None)
    if train is not None:
        ax.axhline(train["return"]["value"], color="tab:green", lw=0.8, ls="--")
    ax.set_xticks(xs, [r["condition"].replace(" + ", "\n+ ").replace(": ", ":\n") for r in rows], fontsize=8)
    ax.set_ylabel("episode return")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------- markdown


def _ci(estimate: Mapping[str, float], percent: bool = False) -> tuple[str, str]:
    if percent:
        return f"{100 * estimate['value']:.0f}%", f"[{100 * estimate['low']:.0f}%, {100 * estimate['high']:.0f}%]"
    return f"{estimate['value']:.1f}", f"[{estimate['low']:.1f}, {estimate['high']:.1f}]"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_markdown(path: Path, info: Mapping[str, Any]) -> str:
    """``report.md`` from the run's ``info`` (see ``pipeline.report_info``); returns the text."""
    s = info["settings"]
    lines = [
        f"# Zero-shot visual transfer: {s['env']}, trained in `{s['train_look']}`, tested in `{s['target_look']}`",
        "",
        *([info["label"], ""] if info.get("label") else []),
        f"{info['n_agents']} agent(s) ({s['algo']}, render {s['render_size']} px, action repeat {s['action_repeat']}, "
        f"episodes of {s['episode_length']} env steps), {info['episodes']} deterministic episodes per agent and "
        "condition from the same initial states in every condition. Mean return over agents and episodes with a "
        f"95% two-level bootstrap interval (agents, then episodes; {info['bootstrap']} resamples); share = the "
        "condition's mean over the same agents' training-look mean (paired resampling). Translators map the target "
        "look to the training look, trained on unpaired frames without rewards "
        f"({info['frames_per_look']} frames per look, actions: {info['collect_policy']}).",
        "",
        "| condition | agents | mean return | 95% CI | share of training-look return | 95% CI |",
        "|---|---|---|---|---|---|",
    ]
    for row in info["rows"]:
        mean, mean_ci = _ci(row["return"])
        share, share_ci = _ci(row["share"], percent=True)
        lines.append(f"| {row['condition']} | {row['agents']} | {mean} | {mean_ci} | {share} | {share_ci} |")
    lines += [
        "",
        "![returns](returns.png)",
        "",
        "## Cost per agent step (wall milliseconds on this machine, during the evaluation)",
        "",
    ]
    lines += [
        "| condition | simulation + render | translation per frame | policy | step as the agent sees it |",
        "|---|---|---|---|---|",
    ]
    for row in info["rows"]:
        lines.append(
            f"| {row['condition']} | {_ms(row['sim_render_ms'])} | {_ms(row['translate_ms'])} | "
            f"{_ms(row['policy_ms'])} | {_ms(row['step_ms'])} |"
        )
    lines += ["", "## Translators", ""]
    lines += [
        "| model | iterations | training wall s | L1 to training look (identity) | PSNR dB (identity) | samples |",
        "|---|---|---|---|---|---|",
    ]
    for t in info["translators"]:
        m = t["paired"]
        lines.append(
            f"| {t['model']} | {t['iterations']} | {t['wall_seconds']:.0f} | {m['l1']:.4f} ({m['identity_l1']:.4f}) | "
            f"{m['psnr']:.2f} ({m['identity_psnr']:.2f}) | ![{t['model']}]({t['grid']}) |"
        )
    lines += [
        "",
        "Sample grids: rows are test states; columns: target look | translated | the same state in the training look.",
        "L1 and PSNR compare translated test frames with the same states rendered in the training look; in brackets, "
        "the untranslated target-look frames (identity).",
        "",
        "## Provenance",
        "",
        f"- command: `{info['provenance']['command']}`",
        f"- git commit: {info['provenance']['git_commit']}",
        f"- hardware: {info['provenance']['hardware']}",
        f"- versions: {info['provenance']['versions']}",
        f"- seed: {info['seed']}; evaluation episode seeds: {info['episode_seeds']}",
        f"- agents: {', '.join(info['agents'])}",
        f"- stage wall times (s): {info['stage_seconds']}",
        "",
    ]
    text = "\n".join(lines)
    path.write_text(text)
    return text
