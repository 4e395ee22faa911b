"""Reproduce the CURL paper's DeepMind Control table: a shortcut to the ``curl_table`` grid.

    python -m experiments.reproduce_dmc launch --algos curl rad --seeds 1 2 3 --budget 100k [--jobs 4] [--dry-run]
    python -m experiments.reproduce_dmc table

``launch`` is ``python -m experiments.grid run curl_table --select ...`` restricted to the given
algorithms, tasks, seeds and budget (finished runs are skipped, interrupted ones resumed); ``table`` is
``python -m experiments.grid report curl_table``. Settings live in ``experiments/grids/curl_table.toml``
(``--protocol cpu`` for this suite's CPU protocol); steps are environment steps.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.grid.cli import DEFAULT_ROOT
from experiments.grid.cli import main as grid_main
from experiments.grid.spec import load_grid
from experiments.paper_scores import BUDGET_ENV_STEPS, PLANET_TASKS

GRID = "curl_table"


def grid_algos() -> list[str]:
    """The labels of the grid's ``algo`` axis (``experiments/grids/curl_table.toml``), the ``--algos`` choices."""
    return next(axis for axis in load_grid(GRID).axes if axis.name == "algo").labels()


def grid_argv(argv: Sequence[str]) -> list[str]:
    """The ``experiments.grid`` command line this shortcut stands for."""
    parser = argparse.ArgumentParser(prog="python -m experiments.reproduce_dmc", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    launch = sub.add_parser("launch", help="run the grid's unfinished cells")
    launch.add_argument("--algos", nargs="+", choices=grid_algos(), default=None)
    launch.add_argument("--tasks", nargs="+", choices=PLANET_TASKS, default=None)
    launch.add_argument("--seeds", nargs="+", type=int, default=None)
    launch.add_argument("--budget", choices=sorted(BUDGET_ENV_STEPS), default=None)
    launch.add_argument("--jobs", type=int, default=1)
    launch.add_argument("--dry-run", action="store_true")
    table = sub.add_parser("table", help="report the finished runs beside the paper")
    for p in (launch, table):
        p.add_argument("--protocol", default=None)
        p.add_argument("--runs", type=Path, default=DEFAULT_ROOT, help="the grid runner's --root")
    args = parser.parse_args(argv)
    protocol = ["--protocol", args.protocol] if args.protocol else []
    if args.command == "table":
        return ["report", GRID, *protocol, "--root", str(args.runs)]
    select = []
    for axis, values in (("algo", args.algos), ("env", args.tasks), ("seed", args.seeds),
                         ("env_steps", [BUDGET_ENV_STEPS[args.budget]] if args.budget else None)):  # fmt: skip
        if values:
            select += ["--select", f"{axis}={','.join(map(str, values))}"]
    return ["run", GRID, *protocol, "--root", str(args.runs), "--jobs", str(args.jobs), *select,
            *(["--dry-run"] if args.dry_run else [])]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    grid_main(grid_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
