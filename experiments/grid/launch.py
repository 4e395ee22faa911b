"""Running cells: :func:`execute_cell` (one cell, anywhere), a local pool of workers, and submitit.

:func:`execute_cell` is the unit both launchers run: it decides at start whether the run resumes (a
checkpoint exists) or starts, runs the trainer's commands as subprocesses with the job's environment
(thread counts, ``CUDA_VISIBLE_DEVICES``), and records the launch in the cell's ``state.json``. Locally a
thread pool keeps ``--jobs`` of them running, each worker owning a fixed GPU slot; with submitit the same
function is pickled into cluster jobs (a job array on SLURM), so the records and the resume logic are
the same on both paths.
"""

from __future__ import annotations

import math
import os
import queue
import shlex
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from experiments.grid.state import DONE, FAILED, INTERRUPTED, RUNNING, last_line, now, read_json, write_state
from experiments.grid.trainers import TRAINERS
from ssl_shared.errors import UserError
from ssl_shared.run_dir import atomic_write_json


@dataclass(frozen=True)
class CellJob:
    """Everything :func:`execute_cell` needs; plain data, so that submitit can pickle it."""

    cell_id: str
    trainer: str
    settings: dict[str, Any]
    out: str
    cell_dir: str
    cwd: str
    threads: int | None
    env: dict[str, str]
    grid_sha256: str
    launcher: str


def execute_cell(job: CellJob, stop: threading.Event | None = None) -> int:
    """Bring one cell to done (or fail) and record it; returns the exit code of the last command run.

    When ``stop`` is set (the local runner was interrupted), the trainer is sent SIGTERM, the cell is
    recorded as ``interrupted`` (its checkpoints make it resumable) and the trainer's exit code returned.
    """
    trainer = TRAINERS[job.trainer]
    out, cell_dir = Path(job.out), Path(job.cell_dir)
    state_path = cell_dir / "state.json"
    if trainer.finished(out):
        return 0
    moved = _move_aside_unresumable(out, trainer)
    commands, resume = trainer.commands(job.settings, out, job.threads)
    progress, _ = trainer.progress(out)
    cell_dir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(state_path, {
        "cell": job.cell_id, "status": RUNNING, "commands": [shlex.join(c) for c in commands], "resume": resume,
        "launcher": job.launcher, "host": socket.gethostname(), "runner_pid": os.getpid(), "pid": None,
        "job_id": _submitit_job_id(), "started_at": now(), "finished_at": None, "exit_code": None, "error": "",
        "grid_sha256": job.grid_sha256, "settings": job.settings, "env": job.env, "progress_at_start": progress,
        "moved_aside": moved,
    })  # fmt: skip
    env = {**os.environ, **job.env, "PYTHONUNBUFFERED": "1"}
    with open(cell_dir / "stdout.log", "ab") as stdout, open(cell_dir / "stderr.log", "ab") as stderr:
        for command in commands:
            stdout.write(f"\n[grid] {shlex.join(command)}\n".encode())
            stdout.flush()
            stderr_start = stderr.tell()
            proc = subprocess.Popen(command, cwd=job.cwd, env=env, stdout=stdout, stderr=stderr)
            write_state(state_path, pid=proc.pid)
            try:
                code = _wait(proc, stop)
            except BaseException:
                proc.terminate()
                proc.wait()
                write_state(state_path, status=FAILED, exit_code=proc.returncode, finished_at=now(),
                            error="the runner was interrupted and stopped the trainer")  # fmt: skip
                raise
            if stop is not None and stop.is_set():
                write_state(state_path, status=INTERRUPTED, exit_code=code, finished_at=now(),
                            error="the runner was interrupted and stopped the trainer")  # fmt: skip
                return code if code != 0 else INTERRUPTED_EXIT
            if code != 0:
                stderr.flush()
                error = last_line(cell_dir / "stderr.log", start=stderr_start) or f"exit code {code}"
                write_state(state_path, status=FAILED, exit_code=code, finished_at=now(), error=error)
                return code
    write_state(state_path, status=DONE, exit_code=0, finished_at=now(), progress_at_end=trainer.progress(out)[0])
    return 0


INTERRUPTED_EXIT = 130  # the shell's code for a process stopped by Ctrl-C


def _wait(proc: subprocess.Popen, stop: threading.Event | None) -> int:
    """Wait for ``proc``; when ``stop`` is set meanwhile, terminate it (SIGTERM) and wait for it to end."""
    while stop is not None:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if stop.is_set():
                proc.terminate()
                break
    return proc.wait()


def _move_aside_unresumable(out: Path, trainer) -> str | None:
    """A run folder with files but neither a finished run nor a checkpoint cannot be resumed; rename it
    (``seed=1`` -> ``seed=1.partial-1``) so the new run starts in an empty folder. Returns the new name."""
    if not out.is_dir() or not any(out.iterdir()) or trainer.trained(out) or trainer.has_checkpoint(out):
        return None
    k = 1
    while out.with_name(f"{out.name}.partial-{k}").exists():
        k += 1
    target = out.with_name(f"{out.name}.partial-{k}")
    out.rename(target)
    return target.name


def _submitit_job_id() -> str | None:
    """The submitit job id when running inside a submitit job (which sets ``SUBMITIT_EXECUTOR``), else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None  # importing submitit reconfigures logging; only do it inside its jobs
    import submitit

    return str(submitit.JobEnvironment().job_id)


# ----------------------------------------------------------------------------------------- local pool


def visible_gpus() -> list[str]:
    """Device ids a job may be given: ``CUDA_VISIBLE_DEVICES`` when set, else ``0..n-1`` as CUDA counts them."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch or no CUDA
        return []


def gpu_slots(jobs: int, gpus_per_job: float | None, visible: list[str]) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` for each of ``jobs`` worker slots; None leaves the variable as it is.

    ``gpus_per_job`` 0 hides the GPUs; a fraction ``1/k`` packs ``k`` jobs onto each GPU (slot ``s`` gets
    GPU ``s // k``); an integer ``g`` gives each job ``g`` GPUs of its own.
    """
    if gpus_per_job is None:
        return [None] * jobs
    if gpus_per_job < 0:
        raise UserError(f"--gpus-per-job {gpus_per_job}: must be >= 0")
    if gpus_per_job == 0:
        return [""] * jobs
    if gpus_per_job < 1:
        per_gpu = math.floor(1 / gpus_per_job + 1e-9)
        if len(visible) * per_gpu < jobs:
            raise UserError(
                f"--jobs {jobs} with --gpus-per-job {gpus_per_job}: {len(visible)} visible GPU(s) hold at most "
                f"{len(visible) * per_gpu} jobs"
            )
        return [visible[s // per_gpu] for s in range(jobs)]
    if gpus_per_job != int(gpus_per_job):
        raise UserError(f"--gpus-per-job {gpus_per_job}: above 1 it must be a whole number")
    g = int(gpus_per_job)
    if len(visible) < jobs * g:
        raise UserError(f"--jobs {jobs} x --gpus-per-job {g} needs {jobs * g} GPUs; {len(visible)} visible")
    return [",".join(visible[s * g : (s + 1) * g]) for s in range(jobs)]


class GridInterrupted(Exception):
    """The local runner was stopped (Ctrl-C or SIGTERM) and stopped its trainers; ``stopped`` names their cells."""

    def __init__(self, stopped: list[str]):
        super().__init__(f"{len(stopped)} running cell(s) stopped")
        self.stopped = stopped


def run_local(jobs: list[CellJob], workers: int, slots: list[str | None]) -> dict[str, int]:
    """Run ``jobs`` on ``workers`` threads, each starting one trainer at a time; ``{cell_id: exit code}``.

    An interrupt (KeyboardInterrupt in the main thread, which is what Ctrl-C and the runner's SIGTERM
    handler raise) cancels the cells not started yet, terminates the running trainers, waits for them and
    raises :class:`GridInterrupted`; rerunning the same command resumes the stopped cells.
    """
    free: queue.Queue[int] = queue.Queue()
    for s in range(workers):
        free.put(s)
    stop = threading.Event()

    def work(job: CellJob) -> int:
        slot = free.get()
        try:
            if stop.is_set():
                return INTERRUPTED_EXIT
            env = dict(job.env)
            if slots[slot] is not None:
                env["CUDA_VISIBLE_DEVICES"] = slots[slot]
            return execute_cell(replace(job, env=env), stop)
        finally:
            free.put(slot)

    codes: dict[str, int] = {}
    pool = ThreadPoolExecutor(max_workers=workers)
    futures = {pool.submit(work, job): job for job in jobs}
    try:
        for future in as_completed(futures):
            job = futures[future]
            codes[job.cell_id] = future.result()
            state = read_json(Path(job.cell_dir) / "state.json") or {}
            outcome = "done" if codes[job.cell_id] == 0 else f"failed (exit {codes[job.cell_id]}): {state.get('error')}"
            print(f"[grid] {job.cell_id}: {outcome}", flush=True)
    except KeyboardInterrupt:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        stopped = [job.cell_id for f, job in futures.items() if job.cell_id not in codes and not f.cancelled()]
        raise GridInterrupted(stopped) from None
    pool.shutdown()
    return codes


# ----------------------------------------------------------------------------------------- submitit

GENERIC_SUBMITIT = {"name", "timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node", "tasks_per_node",
                    "stderr_to_stdout"}  # fmt: skip


def submitit_parameters(slurm: dict[str, Any], name: str, threads: int | None, gpus_per_job: float | None,
                        parallel: int | None) -> dict[str, Any]:  # fmt: skip
    """``AutoExecutor.update_parameters`` keywords: the grid's ``[slurm]`` table (keys other than submitit's
    generic ones get the ``slurm_`` prefix) under the runner's flags (threads, GPUs, parallel jobs)."""
    params: dict[str, Any] = {"name": name}
    for key, value in slurm.items():
        params[key if key in GENERIC_SUBMITIT or key.startswith(("slurm_", "local_")) else f"slurm_{key}"] = value
    if threads is not None:
        params["cpus_per_task"] = threads
    if gpus_per_job:
        params["gpus_per_node"] = math.ceil(gpus_per_job)
    if parallel is not None:
        params["slurm_array_parallelism"] = parallel
    return params


def submit(jobs: list[CellJob], folder: Path, cluster: str, params: dict[str, Any], wait: bool) -> dict[str, int]:
    """Send ``jobs`` through submitit (one job array on SLURM); with ``wait``, return their exit codes."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**params)
    submitted_at = now()
    with executor.batch():
        futures = [executor.submit(execute_cell, job) for job in jobs]
    for job, future in zip(jobs, futures):
        atomic_write_json(Path(job.cell_dir) / "submission.json", {
            "job_id": str(future.job_id), "cluster": cluster, "folder": str(folder), "submitted_at": submitted_at,
        })  # fmt: skip
        print(f"[grid] {job.cell_id}: submitted as job {future.job_id}", flush=True)
    if not wait:
        return {}
    codes = {}
    for job, future in zip(jobs, futures):
        try:
            codes[job.cell_id] = int(future.result())
        except Exception as err:  # noqa: BLE001 - a job that died outside execute_cell (e.g. killed by the scheduler)
            print(f"[grid] {job.cell_id}: job {future.job_id} failed: {err}", file=sys.stderr, flush=True)
            codes[job.cell_id] = 1
    return codes
