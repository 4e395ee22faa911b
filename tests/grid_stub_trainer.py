"""A stand-in trainer for the grid runner's tests: counts steps, checkpoints, fails on request, resumes.

    python tests/grid_stub_trainer.py --steps 3 --fail-at 1 --out DIR [--resume] [--threads N]

Writes ``DIR/progress.csv`` (one row per step), ``DIR/ckpt`` (the next step), ``DIR/calls.txt`` (one line per
launch: its arguments) and, when done, ``DIR/done.json`` with what it saw (resumed step, threads flag,
``OMP_NUM_THREADS``, ``CUDA_VISIBLE_DEVICES``). ``--fail-at K`` exits 3 at step K with a one-line error on
stderr unless resuming. ``--rendezvous DIR --peers N`` waits (up to a minute) until N launches have
registered in DIR: it finishes only when N cells run at the same time. ``--hold-at K`` sleeps (a minute) at
step K unless resuming: a run that is still going when its runner is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grid_stub_trainer")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fail-at", type=int, default=-1)
    p.add_argument("--rendezvous", default=None)
    p.add_argument("--peers", type=int, default=1)
    p.add_argument("--hold-at", type=int, default=-1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    return p


def main() -> None:
    args = build_parser().parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "calls.txt", "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\n")
    if args.rendezvous:
        folder = Path(args.rendezvous)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{os.getpid()}").write_text("")
        deadline = time.monotonic() + 60
        while len(list(folder.iterdir())) < args.peers:
            if time.monotonic() > deadline:
                sys.stderr.write(f"stub: no peer arrived in {folder}\n")
                raise SystemExit(4)
            time.sleep(0.05)
    start = int((out / "ckpt").read_text()) if args.resume else 0
    for step in range(start, args.steps):
        if step == args.fail_at and not args.resume:
            sys.stderr.write(f"stub: loss is nan at step {step}\n")
            raise SystemExit(3)
        if step == args.hold_at and not args.resume:
            time.sleep(60)
        new = not (out / "progress.csv").exists()
        with open(out / "progress.csv", "a") as f:
            f.write(("step\n" if new else "") + f"{step}\n")
        (out / "ckpt").write_text(str(step + 1))
    record = {"seed": args.seed, "resumed_from": start, "threads": args.threads,
              "omp": os.environ.get("OMP_NUM_THREADS"), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}  # fmt: skip
    (out / "done.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
