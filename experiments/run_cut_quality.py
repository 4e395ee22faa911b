"""CPU quality runs: CUT, FastCUT and CycleGAN on ``dmc-restyle`` at 64 px, scored on the paired test set.

Budget (issue 4, section 5: at most 60 CPU-minutes per model on the shared 2-core machine): every model
trains for the same fixed number of iterations with a reduced generator (``ngf 16``, 6 residual blocks,
``ndf 32``), batch 1, load 72 / crop 64, one CPU thread, 1000 iterations = one pass over the 1000 trainA
images at the constant learning rate 2e-4 (``n_epochs 1, n_epochs_decay 0``: no decay phase fits the
budget). On the shared machine a process gets a small fraction of a core, so the wall time is many times
the CPU time (both are recorded).
Everything else is the paper preset of each model (PatchNCE layers 0,4,8,12,16, 256 patches, lsgan, ...).
Then G(testA) is compared with the ground-truth testB renders (L1, PSNR, SSIM in [0, 1]) next to the
identity baseline (testA vs testB).

Usage::

    python experiments/run_cut_quality.py train --model cut --data DATA --out runs/cut_quality
    python experiments/run_cut_quality.py table --out runs/cut_quality --results experiments/results

``train`` writes ``OUT/<model>/`` (the run) and ``OUT/<model>/eval.json``; ``table`` collects every
``eval.json`` into ``cut_quality.{json,md}`` and copies each model's test grid into ``--results``.
For a user's own dataset (horse2zebra, ...) pass its folder as ``--data`` and the paper's settings with
``--full-size`` (ngf 64, 9 blocks, load 286 / crop 256, the preset epochs) and ``--inception-weights``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from cut_translation.checkpoint import STATE_FILE, load_checkpoint, locate_checkpoint
from cut_translation.cli import evaluate, translate_image
from cut_translation.data import PairedTestDataset
from cut_translation.models import MODEL_NAMES, make_config
from cut_translation.models.gan_loss import GAN_MODES
from cut_translation.trainer import TrainConfig, Trainer, to_unit
from experiments.provenance import git_commit
from ssl_shared.host_memory import reuse_freed_host_memory

SMALL = {"generator": {"ngf": 16, "n_blocks": 6}, "discriminator": {"ndf": 32}, "n_epochs": 1, "n_epochs_decay": 0}


def small_budget(epochs: int | None, decay_epochs: int, gan_mode: str | None = None, ngf: int | None = None) -> dict:
    """The CPU budget; with ``epochs`` the run lasts ``epochs + decay_epochs`` passes over trainA, the
    learning rate constant for ``epochs`` and then decayed linearly (the paper's schedule, shortened).
    ``gan_mode`` / ``ngf`` replace the preset's GAN loss / the budget's generator width (shown in the table)."""
    budget = json.loads(json.dumps(SMALL))
    if epochs is not None:
        if epochs < 1 or decay_epochs < 0:
            raise ValueError(f"--epochs must be >= 1 and --decay-epochs >= 0, got {epochs} and {decay_epochs}")
        budget.update(n_epochs=epochs, n_epochs_decay=decay_epochs)
    if gan_mode is not None:
        budget["gan_mode"] = gan_mode
    if ngf is not None:  # GeneratorConfig rejects ngf < 1 before the first step
        budget["generator"]["ngf"] = ngf
    return budget


def provenance(command: list[str], seconds: float, cpu_seconds: float) -> dict:
    return {
        "command": " ".join(command),
        "git_commit": git_commit(),
        "hardware": "shared 2-core CPU, no GPU",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "wall_seconds": round(seconds, 1),
        "process_cpu_seconds": round(cpu_seconds, 1),
    }


def save_test_grid(run: Path, data: str, target: Path, n: int = 8) -> None:
    """Rows: n test pairs; columns: input A | G(A) | true B."""
    _, model = load_checkpoint(run)
    generator = model.translator.eval()
    paired = PairedTestDataset(data, "test")
    step = max(1, len(paired) // n)
    rows = []
    for i in range(0, min(len(paired), step * n), step):
        item = paired[i]
        rows += [item["A"], translate_image(generator, item["A"]), item["B"]]
    target.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(to_unit(torch.stack(rows)), nrow=3, padding=2), target)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    reuse_freed_host_memory()
    overrides = {} if args.full_size else small_budget(args.epochs, args.decay_epochs, args.gan_mode, args.ngf)
    iters = None if args.epochs is not None else args.iters
    config = TrainConfig(
        model=args.model,
        data=args.data,
        out=str(Path(args.out) / args.model),
        iters=iters,
        load_size=286 if args.full_size else 72,
        crop_size=256 if args.full_size else 64,
        seed=args.seed,
        device="auto",
        log_every=25,
        sample_every=250,
        checkpoint_every=250,
        inception_weights=args.inception_weights,
    )
    start, cpu_start = time.time(), time.process_time()
    model_config = None if args.resume else make_config(args.model, **overrides)  # resume: the saved one
    summary = Trainer(config, model_config, resume=args.resume).train()
    result = evaluate(config.out, args.data, inception_weights=args.inception_weights)
    result.update(
        train_summary=summary,
        budget=overrides or "paper defaults",
        provenance=provenance([sys.executable, *sys.argv], time.time() - start, time.process_time() - cpu_start),
        seed=args.seed,
    )
    (Path(config.out) / "eval.json").write_text(json.dumps(result, indent=2))
    save_test_grid(Path(config.out), args.data, Path(config.out) / "test_grid.png")
    print(json.dumps(result["paired"], indent=2))


def evaluate_run(args: argparse.Namespace) -> None:
    """Score the latest checkpoint of a run that was stopped before its planned end (e.g. at a deadline)."""
    torch.set_num_threads(args.threads)
    run = Path(args.out) / args.model
    start, cpu_start = time.time(), time.process_time()
    result = evaluate(run, args.data)
    config = json.loads((run / "config.json").read_text())
    found = locate_checkpoint(run)
    ckpt = found / STATE_FILE if found.is_dir() else found
    train_wall = ckpt.stat().st_mtime - (run / "config.json").stat().st_mtime
    result.update(
        train_summary={"stopped_early": True, "planned_iterations": config["total_iters"], "note": args.note},
        budget=config["model"] if args.full_size else SMALL,
        seed=config["train"]["seed"],
        provenance=provenance(
            [sys.executable, *sys.argv],
            train_wall + time.time() - start,
            args.train_cpu_seconds + time.process_time() - cpu_start,
        ),
    )
    (run / "eval.json").write_text(json.dumps(result, indent=2))
    save_test_grid(run, args.data, run / "test_grid.png")
    print(json.dumps(result["paired"], indent=2))


def table(args: argparse.Namespace) -> None:
    out, results = Path(args.out), Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    rows, records = [], {}
    identity = None
    for name in MODEL_NAMES:
        path = out / name / "eval.json"
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        records[name] = rec
        p = rec["paired"]
        identity = identity or p
        ts = rec.get("train_summary", {})
        iters = f"{rec['iteration']}" + (f" of {ts['planned_iterations']} (stopped)" if ts.get("stopped_early") else "")
        budget = rec.get("budget") if isinstance(rec.get("budget"), dict) else SMALL
        schedule = f"{budget['n_epochs']} const + {budget['n_epochs_decay']} decay epochs"
        nets = f"ngf {budget['generator']['ngf']}, {budget.get('gan_mode', 'lsgan')}"
        rows.append(
            f"| {name} | {iters} | {schedule} | {nets} | {p['l1']:.4f} | {p['psnr']:.2f} | {p['ssim']:.4f} | "
            f"{rec['provenance']['process_cpu_seconds'] / 60:.1f} | {rec['provenance']['wall_seconds'] / 60:.1f} |"
        )
        grid = out / name / "test_grid.png"
        if grid.is_file():
            shutil.copy(grid, results / f"cut_quality_grid_{name}.png")
    if identity is None:
        raise SystemExit(f"no eval.json under {out}/<model>/")
    header = [
        "| method | iterations | lr schedule | generator, GAN loss | L1 (lower better) | PSNR dB | SSIM | "
        "CPU-min (train+eval) | wall-min |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| identity (A vs true B) | - | - | - | {identity['identity_l1']:.4f} | {identity['identity_psnr']:.2f} | "
        f"{identity['identity_ssim']:.4f} | - | - |",
    ]
    md = "\n".join(
        [
            "# CUT / FastCUT / CycleGAN on dmc-restyle 64 px (paired test set)",
            "",
            f"Test pairs: {int(identity['n'])}. Metrics in [0, 1] image range, mean over images.",
            f"Networks: {json.dumps({k: SMALL[k] for k in ('generator', 'discriminator')})}, batch 1, "
            "load 72 / crop 64, 1 thread; one epoch = 1000 iterations (one pass over trainA).",
            "",
            *header,
            *rows,
            "",
            "Provenance (full records in cut_quality.json):",
            "",
            *[
                f"- {n}: `{r['provenance']['command']}`; commit {r['provenance']['git_commit']}; "
                f"{r['provenance']['hardware']}; torch {r['provenance']['torch']}; seed {r['seed']}"
                + (f"; {r['train_summary'].get('note')}" if r["train_summary"].get("note") else "")
                for n, r in records.items()
            ],
            *(["", f"Notes: {args.note}"] if args.note else []),
        ]
    )
    (results / "cut_quality.md").write_text(md + "\n")
    (results / "cut_quality.json").write_text(json.dumps(records, indent=2))
    print(md)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--model", choices=MODEL_NAMES, required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--out", default="runs/cut_quality")
    t.add_argument(
        "--iters",
        type=int,
        default=1000,
        help="iterations (ignored with --epochs); the lr schedule spans them: constant with the CPU "
        "budget's 1 + 0 epochs, the preset's constant + decay compressed with --full-size",
    )
    t.add_argument("--epochs", type=int, default=None, help="epochs at constant lr (then --decay-epochs)")
    t.add_argument("--decay-epochs", type=int, default=0, help="epochs of linear lr decay after --epochs")
    t.add_argument("--gan-mode", choices=GAN_MODES, default=None, help="GAN loss instead of the preset's (lsgan)")
    t.add_argument("--ngf", type=int, default=None, help=f"generator width instead of {SMALL['generator']['ngf']}")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--full-size", action="store_true", help="paper settings instead of the CPU budget")
    t.add_argument("--inception-weights", default=None)
    e = sub.add_parser("evaluate", help="score the latest checkpoint of a stopped run")
    e.add_argument("--model", choices=MODEL_NAMES, required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--out", default="runs/cut_quality")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--train-cpu-seconds", type=float, required=True, help="CPU seconds the training process used")
    e.add_argument("--note", default="")
    e.add_argument("--full-size", action="store_true")
    s = sub.add_parser("table")
    s.add_argument("--out", default="runs/cut_quality")
    s.add_argument("--results", default="experiments/results")
    s.add_argument("--note", default="", help="free text appended to the table")
    args = p.parse_args(argv)
    {"train": train, "evaluate": evaluate_run, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
