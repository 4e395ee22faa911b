"""``python -m experiments.grid report GRID``: copy the finished runs' data into the results, then report from it.

The report never reads the run folders directly: it first copies each finished run's per-run files (the
adapter's ``data_files``: ``eval.csv``, ``config.json``, ``summary.json``, ``launches.json`` for the RL
trainer) and the grid file into ``experiments/results/<grid>[_<protocol>]/`` (``runs/<cell>/``,
``grid.toml``), then computes everything from that folder. ``--from-results`` skips the copy, so a
committed report regenerates from the committed data alone, byte for byte: bootstraps are seeded,
orders are sorted or follow the grid file, figures carry no date or software stamp, and the text holds
no time, path or commit of the machine that wrote it (the runs' own ``launches.json`` hold those).

What the report contains depends on the trainer (:mod:`experiments.grid.rl_report` for returns,
:mod:`experiments.grid.table_report` for translation metrics and probe scores); every report starts with
the grid, its protocol (REDUCED when it is one), which cells are in it, and which are missing.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.grid.spec import Cell, Plan
from experiments.grid.state import Layout
from experiments.grid.trainers import Trainer
from ssl_shared.errors import UserError
from ssl_shared.provenance import hardware_line, package_versions
from ssl_shared.run_dir import atomic_write_bytes, atomic_write_text


@dataclass(frozen=True)
class Finished:
    """A finished cell as the report sees it: its settings and its folder of copied per-run data."""

    cell: Cell
    folder: Path
    method: str
    task: str
    seed: str


@dataclass(frozen=True)
class ReportOptions:
    reps: int = 10_000  # bootstrap replications of interval estimates (rliable's percentile CIs)
    curve_reps: int = 2_000  # for performance profiles, sample-efficiency curves, probability of improvement
    seed: int = 0  # numpy seed each bootstrap starts from


def sync_results(plan: Plan, trainer: Trainer, runs: Layout, dest: Path) -> int:
    """Copy the grid file and every finished run's per-run files into ``dest``; returns how many runs."""
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / "grid.toml", plan.grid.text)
    copied = 0
    for cell in plan.cells:
        out = runs.run_dir(cell)
        if not trainer.finished(out):
            continue
        target = dest / "runs" / cell.cell_id
        target.mkdir(parents=True, exist_ok=True)
        for name in trainer.data_files:
            if (out / name).is_file():
                copy_portably(out / name, target / name)
            elif (target / name).is_file():  # left from an earlier run of this cell: not this run's data
                (target / name).unlink()
        copied += 1
    return copied


def copy_portably(source: Path, target: Path) -> None:
    """Copy a run file for committing: paths under the repository root become relative to it (a run's
    ``config.json`` records its absolute ``--out``), so results read the same on every machine."""
    from ssl_shared.provenance import REPO

    if source.suffix not in (".json", ".csv", ".md", ".txt"):
        shutil.copyfile(source, target)
        return
    data = source.read_bytes()  # bytes: line endings (CSV's \r\n) are kept
    for root in {str(REPO), str(REPO.resolve())}:
        data = data.replace(root.encode() + b"/", b"")
    atomic_write_bytes(target, data)


def finished_in_results(plan: Plan, trainer: Trainer, dest: Path) -> list[Finished]:
    """Cells of the plan whose copied data hold the finished run's last file, in plan order."""
    final = trainer.finish_file or trainer.completion_file
    report = plan.grid.report
    out = []
    for cell in plan.cells:
        folder = dest / "runs" / cell.cell_id
        if (folder / final).is_file():
            out.append(
                Finished(
                    cell, folder, plan.method_of(cell), role_value(cell, report.task), role_value(cell, report.seed)
                )
            )
    return out


def role_value(cell: Cell, name: str | None) -> str:
    """The label of the axis ``name`` (or the value of the fixed setting ``name``); ``-`` when unset."""
    if name is None:
        return "-"
    if name in cell.labels:
        return cell.labels[name]
    if name in cell.settings:
        return str(cell.settings[name])
    return "-"


def stray_results(plan: Plan, dest: Path, trainer: Trainer) -> list[str]:
    """Copied runs in ``dest`` that the plan has no cell for (e.g. seeds removed from the grid file)."""
    final = trainer.finish_file or trainer.completion_file
    planned = {c.cell_id for c in plan.cells}
    found = sorted(str(p.parent.relative_to(dest / "runs")) for p in (dest / "runs").rglob(final))
    return [c for c in found if c not in planned]


# ----------------------------------------------------------------------------------------- common sections


def header(plan: Plan, trainer: Trainer, finished: list[Finished], dest: Path, options: ReportOptions) -> list[str]:
    grid = plan.grid
    title = plan.name + (" (REDUCED BUDGET)" if plan.reduced else "")
    lines = [f"# {title}", ""]
    if plan.reduced:
        lines += [f"> **{plan.banner()}.** Every number below is at this reduced budget.", ""]
    if grid.description:
        lines += [grid.description.strip(), ""]
    total = len(plan.cells)
    coverage = "complete" if len(finished) == total else f"PARTIAL: {len(finished)} of {total} cells finished"
    lines += [
        f"- grid `{grid.name}`"
        + (f", protocol `{plan.protocol.name}`" if plan.protocol else "")
        + f"; grid file SHA-256 `{grid.sha256[:16]}` (copied here as `grid.toml`)",
        f"- trainer: `python -m {' '.join(trainer.command[1:])}`",
        f"- cells: {coverage}; run with `python -m experiments.grid run {grid.name}"
        + (f" --protocol {plan.protocol.name}" if plan.protocol else "")
        + "` (settings and seeds per cell: `grid.toml`, `runs/<cell>/config.json`)",
        f"- per-run data: `runs/<cell>/` ({', '.join(trainer.data_files)})",
        f"- regenerate from this folder: `python -m experiments.grid report {grid.name}"
        + (f" --protocol {plan.protocol.name}" if plan.protocol else "")
        + " --from-results`",
        f"- versions used for the statistics and figures: {_versions()}",
    ]
    lines += [f"- reference: {r}" for r in grid.references]
    lines += provenance_lines(finished)
    lines += wall_time_lines(trainer, finished)
    stray = stray_results(plan, dest, trainer)
    if stray:
        lines.append(f"- ignored: {len(stray)} copied run(s) that the grid file no longer plans ({', '.join(stray)})")
    return [*lines, ""]


def _versions() -> str:
    versions = package_versions(("rliable", "numpy", "scipy", "matplotlib"))
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def provenance_lines(finished: list[Finished]) -> list[str]:
    """Distinct commits and machines from the runs' ``launches.json`` (written by the trainers)."""
    commits, machines, missing = set(), set(), 0
    for f in finished:
        path = f.folder / "launches.json"
        if not path.is_file():
            missing += 1
            continue
        for launch in json.loads(path.read_text()):
            commits.add(str(launch.get("git_commit", "unknown")))
            try:
                machines.add(hardware_line(launch["hardware"]))
            except (KeyError, TypeError):
                machines.add("not recorded")
    lines = []
    if commits:
        lines.append(f"- runs launched at commit(s): {', '.join(f'`{c}`' for c in sorted(commits))}")
    if machines:
        lines.append(f"- runs' hardware: {'; '.join(sorted(machines))}")
    if missing:
        lines.append(f"- {missing} of {len(finished)} finished run(s) have no launches.json (no launch provenance)")
    return lines


def wall_time_lines(trainer: Trainer, finished: list[Finished]) -> list[str]:
    """Total and range of the runs' training wall times, as the trainer recorded them."""
    if trainer.wall_time is None or not finished:
        return []
    filename, key = trainer.wall_time
    seconds = []
    for f in finished:
        value = json.loads((f.folder / filename).read_text()).get(key)
        if isinstance(value, (int, float)):
            seconds.append(float(value))
    if not seconds:
        return []
    return [
        f"- training wall time ({filename} `{key}`): {sum(seconds):,.0f} s over {len(seconds)} run(s), "
        f"{min(seconds):,.0f}-{max(seconds):,.0f} s per run"
    ]


def coverage_section(plan: Plan, finished: list[Finished], budget: str | None) -> list[str]:
    """For a partial grid: seeds finished per method, task (and budget), of those planned."""
    if len(finished) == len(plan.cells):
        return []
    report = plan.grid.report
    planned: dict[tuple[str, str, str], int] = defaultdict(int)
    done: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for cell in plan.cells:
        planned[(plan.method_of(cell), role_value(cell, report.task), role_value(cell, budget))] += 1
    for f in finished:
        done[(f.method, f.task, role_value(f.cell, budget))].append(f.seed)
    lines = ["## Coverage (partial grid)", "", "| method | task | budget | seeds finished | of planned |",
             "|---|---|---|---|---|"]  # fmt: skip
    for key, n in planned.items():
        seeds = done.get(key, [])
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(seeds)} ({', '.join(seeds) or '-'}) | {n} |")
    return [*lines, ""]


def mean_std(values: list[float], digits: int = 1) -> str:
    """``mean ± std (n)``: population standard deviation over seeds."""
    if not values:
        return "-"
    arr = np.asarray(values, dtype=float)
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=0):.{digits}f} ({arr.size})"


@contextmanager
def seeded_numpy(seed: int):
    """Seed numpy's global generator for a block and restore it afterwards.

    rliable 1.2.0 draws its bootstrap indices from ``np.random`` (``StratifiedBootstrap.update_indices``
    in ``rliable/library.py``), not from the ``random_state`` it accepts, so a reproducible interval needs
    the global generator seeded.
    """
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def save_figure(fig: Any, path: Path) -> None:
    """PNG without the software/date metadata, so the same data give the same bytes."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


# ----------------------------------------------------------------------------------------- entry point


def write_report(plan: Plan, trainer: Trainer, dest: Path, options: ReportOptions) -> Path:
    """Compute the report from the per-run data in ``dest``; writes ``dest/report.md`` (and figures)."""
    if not (dest / "runs").is_dir() and not (dest / "grid.toml").is_file():
        raise UserError(f"no results in {dest}: run `report` without --from-results first")
    finished = finished_in_results(plan, trainer, dest)
    if trainer.report_kind == "rl":
        from experiments.grid.rl_report import rl_sections

        body = rl_sections(plan, finished, dest, options)
    else:
        from experiments.grid.table_report import table_sections

        body = table_sections(plan, trainer, finished, options)
    budget = plan.grid.report.budget
    lines = header(plan, trainer, finished, dest, options) + body + coverage_section(plan, finished, budget)
    path = dest / "report.md"
    atomic_write_text(path, "\n".join(lines).rstrip("\n") + "\n")
    return path
