"""Compare auxiliary objectives under one agent: a shortcut to the ``aux_comparison`` grid.

    python -m experiments.compare_aux --aux none curl byol --seeds 1 2 3 [--jobs 2] [--dry-run]
    python -m experiments.compare_aux --aggregate-only        # the report only

Runs ``python -m experiments.grid run aux_comparison --select aux=... --select seed=...`` (the same CURL
agent, augmentation and budget for every objective, as fixed in ``experiments/grids/aux_comparison.toml``;
``--protocol cpu`` for batch 32), then ``python -m experiments.grid report aux_comparison``: per-seed final
returns, rliable IQM and the probability of improvement over ``none``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.grid.cli import DEFAULT_ROOT
from experiments.grid.cli import main as grid_main

GRID = "aux_comparison"


def grid_argvs(argv: Sequence[str]) -> list[list[str]]:
    """The ``experiments.grid`` command lines this shortcut stands for (run, then report)."""
    parser = argparse.ArgumentParser(prog="python -m experiments.compare_aux", description=__doc__.split("\n")[0])
    parser.add_argument("--aux", nargs="+", default=None, help="objectives (labels of the grid's aux axis)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--env", nargs="+", default=None, help="tasks (the env axis; --protocol planet6 has six)")
    parser.add_argument("--protocol", default=None)
    parser.add_argument("--runs", type=Path, default=DEFAULT_ROOT, help="the grid runner's --root")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the commands only")
    parser.add_argument("--aggregate-only", action="store_true", help="do not train; report what has finished")
    args = parser.parse_args(argv)
    protocol = ["--protocol", args.protocol] if args.protocol else []
    select = []
    for axis, values in (("aux", args.aux), ("seed", args.seeds), ("env", args.env)):
        if values:
            select += ["--select", f"{axis}={','.join(map(str, values))}"]
    report = ["report", GRID, *protocol, "--root", str(args.runs)]
    if args.aggregate_only:
        return [report]
    run = ["run", GRID, *protocol, "--root", str(args.runs), "--jobs", str(args.jobs), *select]
    return [[*run, "--dry-run"]] if args.dry_run else [run, report]


def main(argv: Sequence[str] | None = None) -> None:
    for grid_argv in grid_argvs(sys.argv[1:] if argv is None else argv):
        grid_main(grid_argv)


if __name__ == "__main__":
    main()
