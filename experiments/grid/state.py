"""Where a grid's runs and the runner's records live, and what state each cell is in.

Layout under ``ROOT/<plan name>/`` (``runs/grids/curl_table_cpu/``)::

    runs/<cell id>/                 the run folder (the trainer's ``--out``); only the trainer writes here
    cells/<cell id>/state.json      the runner's record of the cell's latest launch (written atomically)
    cells/<cell id>/submission.json the submitit job id, when the cell went through ``--launcher submitit``
    cells/<cell id>/stdout.log, stderr.log   the trainer's output (appended across launches)
    grid.toml                       the grid file of the latest ``run`` (its SHA-256 is in every state.json)
    submitit/                       submitit's own job folder

``state.json`` holds ``status`` (``running`` / ``done`` / ``failed`` / ``interrupted``), the commands, host, pid, job id,
start and end times, exit code, the last line of stderr on failure, the grid file's SHA-256, the cell's
settings and its progress when the launch started (for the throughput estimate).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.grid.spec import Cell, Plan
from experiments.grid.trainers import Trainer
from ssl_shared.run_dir import atomic_write_json

DONE, RUNNING, FAILED, PENDING = "done", "running", "failed", "pending"
INTERRUPTED = "interrupted"  # recorded when the runner stopped the trainer; shown as a pending cell


@dataclass(frozen=True)
class Layout:
    """Paths of one plan's runs and records under the runner's ``--root``."""

    root: Path

    def run_dir(self, cell: Cell) -> Path:
        return self.root / "runs" / cell.cell_id

    def cell_dir(self, cell: Cell) -> Path:
        return self.root / "cells" / cell.cell_id

    def state_path(self, cell: Cell) -> Path:
        return self.cell_dir(cell) / "state.json"

    def submission_path(self, cell: Cell) -> Path:
        return self.cell_dir(cell) / "submission.json"


def layout(plan: Plan, root: Path) -> Layout:
    return Layout(Path(root).resolve() / plan.name)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_state(path: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the state file at ``path`` (atomic replace); returns the new state."""
    state = read_json(path) or {}
    state.update(fields)
    atomic_write_json(path, state)
    return state


def last_line(path: Path, start: int = 0, max_bytes: int = 65536) -> str:
    """The last non-empty line of a log after byte ``start`` (progress bars' carriage returns end lines too)."""
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(max(start, f.seek(0, os.SEEK_END) - max_bytes))
        tail = f.read().decode(errors="replace")
    lines = [s.strip() for s in tail.replace("\r", "\n").split("\n") if s.strip()]
    return lines[-1] if lines else ""


def process_alive(pid: int, out: Path | None = None) -> bool:
    """True when process ``pid`` runs on this host (and, where ``/proc`` tells, has ``out`` on its command line).

    An empty ``/proc/PID/cmdline`` tells nothing (a child between its fork and its exec, or one exited but
    not yet reaped), so such a process counts as alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if out is not None and cmdline.exists():
        try:
            words = cmdline.read_bytes()
        except OSError:
            return True
        return not words or str(out) in words.replace(b"\0", b" ").decode(errors="replace")
    return True


def launch_alive(state: dict[str, Any], submission: dict[str, Any] | None, out: Path) -> bool:
    """Whether the launch a ``running`` state (or a submitted job) describes is still going.

    On this host the trainer's pid is checked; a submitit job on a cluster is asked for its state; a
    process on another host that cannot be asked counts as alive.
    """
    if state.get("status") == RUNNING:
        if state.get("host") == socket.gethostname():
            if state.get("pid") and process_alive(int(state["pid"]), out):
                return True
            runner = state.get("runner_pid")  # between two commands of the cell, or before the first
            return bool(runner) and process_alive(int(runner))
        return _cluster_job_alive(submission) if submission else True
    if submission and state.get("started_at", 0) < submission.get("submitted_at", 0):
        return _cluster_job_alive(submission)  # submitted, not started yet
    return False


def _cluster_job_alive(submission: dict[str, Any]) -> bool:
    if submission.get("cluster") == "local":
        pid = submission.get("job_id")
        return bool(pid) and str(pid).isdigit() and process_alive(int(pid))
    try:
        import submitit

        job = submitit.SlurmJob(folder=submission["folder"], job_id=str(submission["job_id"]))
        return job.state.upper() in {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED"}
    except Exception:  # noqa: BLE001 - no scheduler reachable: assume it still runs rather than launch twice
        return True


@dataclass(frozen=True)
class CellStatus:
    cell: Cell
    status: str  # done | running | failed | pending
    resumable: bool
    progress: int | None
    total: int | None
    state: dict[str, Any]
    note: str = ""


def cell_status(cell: Cell, trainer: Trainer, where: Layout) -> CellStatus:
    """Classify one cell from its run folder (done?) and the runner's record (running? failed?)."""
    out = where.run_dir(cell)
    state = read_json(where.state_path(cell)) or {}
    submission = read_json(where.submission_path(cell))
    done, total = trainer.progress(out)
    resumable = trainer.has_checkpoint(out)
    if trainer.finished(out):
        note = ""
        if state.get("settings") not in (None, cell.settings):
            note = "ran with other settings than the grid file now gives (see state.json)"
        return CellStatus(cell, DONE, resumable, done, total, state, note)
    if launch_alive(state, submission, out):
        if state.get("status") == RUNNING:
            note = f"pid {state.get('pid') or state.get('runner_pid')} on {state.get('host')}"
        else:
            note = f"submitted as job {submission['job_id']}" if submission else "submitted"
        return CellStatus(cell, RUNNING, resumable, done, total, state, note)
    if state.get("status") == FAILED:
        return CellStatus(cell, FAILED, resumable, done, total, state, state.get("error", ""))
    note = "interrupted" if state.get("status") in (RUNNING, INTERRUPTED) else ""
    return CellStatus(cell, PENDING, resumable, done, total, state, note)


def now() -> float:
    return round(time.time(), 3)
