"""``python -m experiments.grid {run,status,report,list}``: the experiment grids of the suite.

    python -m experiments.grid list
    python -m experiments.grid run curl_table --protocol cpu --jobs 2 --threads-per-job 1 [--dry-run]
    python -m experiments.grid run curl_table --jobs 8 --gpus-per-job 0.25          # 4 jobs per GPU
    python -m experiments.grid run curl_table --launcher submitit --timeout-min 2880  # SLURM job array
    python -m experiments.grid status curl_table --protocol cpu
    python -m experiments.grid report curl_table --protocol cpu        # -> experiments/results/curl_table_cpu/
    python -m experiments.grid report curl_table --protocol cpu --from-results   # regenerate from the copies

``run`` plans the cells of the grid file (``experiments/grids/GRID.toml`` or a path), skips finished ones
(their files are never touched) and running ones, resumes unfinished runs that have a checkpoint and
starts the rest; ``--select AXIS=LABEL[,LABEL]`` restricts it to some cells. Runs live in
``ROOT/<grid>[_<protocol>]/runs/<cell>/``, the runner's records in ``.../cells/<cell>/``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from experiments.grid.launch import (
    INTERRUPTED_EXIT,
    CellJob,
    GridInterrupted,
    gpu_slots,
    run_local,
    submit,
    submitit_parameters,
    visible_gpus,
)
from experiments.grid.report import ReportOptions, sync_results, write_report
from experiments.grid.spec import GRIDS_DIR, find_grid, load_grid, parse_select, plan
from experiments.grid.state import DONE, RUNNING, layout
from experiments.grid.status import collect, render
from experiments.grid.trainers import get_trainer
from ssl_shared.cli import OneLineArgumentParser, command
from ssl_shared.errors import UserError
from ssl_shared.run_dir import atomic_write_text

DEFAULT_ROOT = Path("runs/grids")
DEFAULT_RESULTS = Path("experiments/results")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m experiments.grid", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("grid", help="a grid name (experiments/grids/NAME.toml) or a path to a grid file")
        p.add_argument("--protocol", default=None, help="a protocol the grid file declares (e.g. cpu)")
        p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="where the runs live (default runs/grids)")

    run = sub.add_parser("run", help="launch the unfinished cells")
    common(run)
    run.add_argument("--select", action="append", metavar="AXIS=LABEL[,LABEL]", help="only these cells (repeatable)")
    run.add_argument("--jobs", type=int, default=1, help="cells run at the same time (default 1)")
    run.add_argument(
        "--threads-per-job",
        type=int,
        default=None,
        help="OMP_NUM_THREADS and the trainer's thread flag (default: CPUs // jobs)",
    )
    run.add_argument("--gpus-per-job", type=float, default=None,
                     help="GPUs per job: 0 hides them, 0.25 packs 4 jobs per GPU, 2 gives each job two; "
                          "default: leave CUDA_VISIBLE_DEVICES as it is")  # fmt: skip
    run.add_argument("--launcher", choices=("local", "submitit"), default="local")
    run.add_argument(
        "--cluster",
        choices=("slurm", "local", "debug"),
        default="slurm",
        help="submitit executor (local: subprocesses on this machine, for testing)",
    )
    run.add_argument("--timeout-min", type=int, default=None, help="submitit job time limit (overrides [slurm])")
    run.add_argument("--partition", default=None, help="SLURM partition (overrides [slurm])")
    run.add_argument("--wait", action="store_true", help="submitit: wait for the jobs and report their exit codes")
    run.add_argument("--dry-run", action="store_true", help="print what would run, create nothing")

    status = sub.add_parser("status", help="done / running / failed / pending per cell, progress, ETA")
    common(status)

    report = sub.add_parser("report", help="tables, rliable aggregates and figures into experiments/results")
    common(report)
    report.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="default experiments/results")
    report.add_argument(
        "--from-results",
        action="store_true",
        help="regenerate from the per-run data already copied into the results folder",
    )
    report.add_argument("--reps", type=int, default=None,
                        help="bootstrap resamples for every interval (default 10000 for the aggregate "
                             "table, 2000 for profiles, curves and probability of improvement)")  # fmt: skip

    sub.add_parser("list", help="the grid files and their protocols")
    return parser


@command("python -m experiments.grid")
def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print(list_grids())
    elif args.command == "run":
        code = run_grid(args)
        if code:
            raise SystemExit(code)
    elif args.command == "status":
        grid = load_grid(args.grid)
        trainer = get_trainer(grid.trainer, f"grid file {grid.path}")
        the_plan = plan(grid, args.protocol)
        print(render(the_plan, trainer, collect(the_plan, trainer, layout(the_plan, args.root))), end="")
    else:
        print(report_grid(args))


def list_grids() -> str:
    lines = []
    for path in sorted(GRIDS_DIR.glob("*.toml")):
        grid = load_grid(path)
        protocols = ", ".join(f"{n}{' (reduced)' if p.reduced else ''}" for n, p in grid.protocols.items())
        first = grid.description.strip().splitlines()[0] if grid.description.strip() else ""
        lines.append(f"{grid.name}: {len(plan(grid).cells)} cells, trainer {grid.trainer}; protocols: "
                     f"{protocols or '-'}\n    {first}")  # fmt: skip
    return "\n".join(lines)


def run_grid(args: argparse.Namespace) -> int:
    """Plan, print and launch; returns 1 when a cell failed (local, or submitit with ``--wait``)."""
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: must be >= 1")
    if args.threads_per_job is not None and args.threads_per_job < 1:
        raise UserError(f"--threads-per-job {args.threads_per_job}: must be >= 1")
    grid = load_grid(args.grid)
    trainer = get_trainer(grid.trainer, f"grid file {grid.path}")
    the_plan = plan(grid, args.protocol, parse_select(args.select))
    for cell in the_plan.cells:
        trainer.check(cell.settings, f"grid file {grid.path}, cell {cell.cell_id}")
    where = layout(the_plan, args.root)
    threads = args.threads_per_job or max(1, (os.cpu_count() or 1) // args.jobs)
    print(the_plan.banner(), flush=True)
    todo = []
    for s in collect(the_plan, trainer, where):
        out = where.run_dir(s.cell)
        if s.status in (DONE, RUNNING):
            print(f"skip    {s.cell.cell_id}: {s.status}" + (f" ({s.note})" if s.note else ""))
            continue
        commands, resume = trainer.commands(s.cell.settings, out, threads)
        action = "resume" if resume else "finish" if trainer.trained(out) else "start"
        print(f"{action:<7} {s.cell.cell_id}" + (f" (was {s.status}: {s.note})" if s.note else ""))
        if args.dry_run:
            for c in commands:
                print(f"        {shlex.join(c)}")
        todo.append(s.cell)
    print(f"{len(todo)} of {len(the_plan.cells)} cells to run", flush=True)
    if args.dry_run or not todo:
        return 0
    where.root.mkdir(parents=True, exist_ok=True)
    with exclusive(where.root / "run.lock"):
        atomic_write_text(where.root / "grid.toml", grid.text)
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        jobs = [
            CellJob(cell_id=c.cell_id, trainer=trainer.name, settings=c.settings, out=str(where.run_dir(c)),
                    cell_dir=str(where.cell_dir(c)), cwd=os.getcwd(), threads=threads, env=env,
                    grid_sha256=grid.sha256, launcher=args.launcher)
            for c in todo
        ]  # fmt: skip
        if args.launcher == "local":
            slots = gpu_slots(args.jobs, args.gpus_per_job, visible_gpus() if args.gpus_per_job else [])
            try:
                with sigterm_as_interrupt():
                    codes = run_local(jobs, min(args.jobs, len(jobs)), slots)
            except GridInterrupted as stopped:
                print(f"interrupted: stopped {', '.join(stopped.stopped) or 'no running cell'}; rerun the same "
                      "command to resume", file=sys.stderr, flush=True)  # fmt: skip
                return INTERRUPTED_EXIT
        else:
            slurm = dict(the_plan.slurm)
            if args.timeout_min is not None:
                slurm["timeout_min"] = args.timeout_min
            if args.partition is not None:
                slurm["partition"] = args.partition
            params = submitit_parameters(slurm, f"grid-{the_plan.name}", threads, args.gpus_per_job, args.jobs)
            codes = submit(jobs, where.root / "submitit", args.cluster, params, args.wait)
    failed = sorted(cell for cell, code in codes.items() if code != 0)
    if codes:
        print(f"{len(codes) - len(failed)} of {len(codes)} cells finished; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM (``kill``, a scheduler's stop) raises KeyboardInterrupt like Ctrl-C does, so
    the runner stops its trainers and records them instead of dying and leaving them running."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def exclusive(path: Path):
    """Hold an exclusive lock on ``path`` so two ``run`` commands never launch the same plan at once."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another `python -m experiments.grid run` holds {path}; wait for it or stop it") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def report_grid(args: argparse.Namespace) -> Path:
    name = find_grid(args.grid).stem if not args.from_results else Path(args.grid).stem
    folder = args.results / (name if args.protocol is None else f"{name}_{args.protocol}")
    if args.from_results:
        if not (folder / "grid.toml").is_file():
            raise UserError(f"--from-results: {folder / 'grid.toml'} does not exist; run `report` without it first")
        grid = load_grid(folder / "grid.toml", name=name)
    else:
        grid = load_grid(args.grid)
    trainer = get_trainer(grid.trainer, f"grid file {grid.path}")
    the_plan = plan(grid, args.protocol)
    if not args.from_results:
        copied = sync_results(the_plan, trainer, layout(the_plan, args.root), folder)
        print(f"copied the data of {copied} finished run(s) into {folder}", file=sys.stderr)
    options = ReportOptions() if args.reps is None else ReportOptions(reps=args.reps, curve_reps=args.reps)
    return write_report(the_plan, trainer, folder, options)
