"""``python -m experiments.grid status GRID``: each cell done / running / failed / pending, progress and ETA.

Progress is read from the run folder (``eval.csv``, ``losses.csv``, ``train.csv``: see
:mod:`experiments.grid.trainers`). Throughput is measured per launch: the progress made since the launch
started over the time it has run (``state.json`` records both ends). A running cell's ETA is its
remaining work at its own throughput; the grid's ETA is all remaining work at the mean measured
throughput per job times the number of jobs running now (one when none runs).
"""

from __future__ import annotations

import time
from collections import Counter

from experiments.grid.spec import Plan
from experiments.grid.state import DONE, FAILED, PENDING, RUNNING, CellStatus, Layout, cell_status
from experiments.grid.trainers import Trainer


def throughput(status: CellStatus, clock: float) -> float | None:
    """Units per second of the cell's latest launch (None without a measurable interval)."""
    state = status.state
    start, begun_at = state.get("progress_at_start"), state.get("started_at")
    if begun_at is None:
        return None
    if status.status == DONE:
        end, ended_at = state.get("progress_at_end"), state.get("finished_at")
    elif status.status == RUNNING:
        end, ended_at = status.progress, clock
    else:
        return None
    if end is None or ended_at is None or ended_at <= begun_at:
        return None
    gained = end - (start or 0)
    return gained / (ended_at - begun_at) if gained > 0 else None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def collect(plan: Plan, trainer: Trainer, where: Layout) -> list[CellStatus]:
    return [cell_status(cell, trainer, where) for cell in plan.cells]


def render(plan: Plan, trainer: Trainer, statuses: list[CellStatus], clock: float | None = None) -> str:
    """The status table and a summary line (``clock``: the time used for running cells' throughput)."""
    clock = time.time() if clock is None else clock
    unit = trainer.unit
    lines = [plan.banner(), ""]
    width = max((len(s.cell.cell_id) for s in statuses), default=4)
    lines.append(f"{'cell':<{width}}  {'status':<8}  {'progress (' + unit + ')':<28}  {'ETA':>8}  note")
    rates = []
    remaining_total, known_remaining = 0, True
    for s in statuses:
        rate = throughput(s, clock)
        if rate is not None:
            rates.append(rate)
        total = s.total if s.total is not None else _planned_total(plan, trainer, s)
        done = s.progress or 0
        if s.status != DONE:
            if total is None:
                known_remaining = False
            else:
                remaining_total += max(0, total - done)
        progress = f"{done:,} / {total:,}" if total else (f"{done:,}" if s.progress is not None else "-")
        if total and s.progress is not None:
            progress += f" ({100 * done / total:.0f}%)"
        eta = format_duration((total - done) / rate) if s.status == RUNNING and rate and total else "-"
        label = s.status + ("*" if s.status == PENDING and s.resumable else "")
        lines.append(f"{s.cell.cell_id:<{width}}  {label:<8}  {progress:<28}  {eta:>8}  {s.note}".rstrip())
    counts = Counter(s.status for s in statuses)
    summary = (f"{len(statuses)} cells: {counts[DONE]} done, {counts[RUNNING]} running, {counts[FAILED]} failed, "
               f"{counts[PENDING]} pending")  # fmt: skip
    resumable = sum(1 for s in statuses if s.status == PENDING and s.resumable)
    if resumable:
        summary += f" ({resumable} resumable from a checkpoint, marked *)"
    if remaining_total and rates:
        per_job = sum(rates) / len(rates)
        parallel = max(1, counts[RUNNING])
        eta = remaining_total / (per_job * parallel)
        approx = "" if known_remaining else " (cells whose budget is not known yet are left out)"
        summary += (f"; ETA {format_duration(eta)} for {remaining_total:,} {unit} left at {per_job:,.1f} {unit}/s "
                    f"per job x {parallel} job(s){approx}")  # fmt: skip
    stale = sum(1 for s in statuses if s.status == DONE and s.note)
    if stale:
        summary += f"; {stale} done cell(s) ran with other settings than the grid file now gives"
    lines += ["", summary]
    return "\n".join(lines) + "\n"


def _planned_total(plan: Plan, trainer: Trainer, status: CellStatus) -> int | None:
    if trainer.budget_field is None:
        return None
    value = status.cell.settings.get(trainer.budget_field)
    return int(value) if isinstance(value, (int, float)) else None
