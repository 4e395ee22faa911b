"""CUT / FastCUT / CycleGAN training iterations, ours and the official code in one run: s/iteration, peak RSS.

    nice -n 10 python benchmarks/cut_throughput.py --official-dir PATH --threads 2 \\
        --out benchmarks/results/cut_throughput_cpu_2threads

PATH is a checkout of https://github.com/taesungp/contrastive-unpaired-translation supplied by the user
(nothing is downloaded); its code runs unmodified. Without ``--official-dir`` only our code is timed and
the output says that no ratio was measured.

Settings, the official defaults on both sides: batch 1, ResNet-9 generator with ngf 64, PatchGAN with ndf
64, anti-aliased resampling, instance norm, lsgan, Adam; PatchNCE on layers 0,4,8,12,16 with 256 patches;
CycleGAN with cycle weight 10, identity 0.5 and image pools of 50. Inputs are random ``crop x crop``
images in [-1, 1] already on the device (data loading is excluded, as from the official ``train.py``'s
``optimize_time``). Same torch thread count and device for every worker.

- ours: ``cut_translation.models.build_model(name)`` (the paper presets), timed ``model.train_step(a, b)``,
  in a process set up as ``scv-cut-train`` sets it up (``reuse_freed_host_memory()``);
- official: set up as its ``train.py`` does: ``TrainOptions().parse()`` on ``--model cut --CUT_mode CUT``,
  ``--model cut --CUT_mode FastCUT`` or ``--model cycle_gan`` (``--gpu_ids -1``, or ``0`` on CUDA),
  ``create_model``, ``data_dependent_initialize``, ``setup``, ``parallelize``; timed ``set_input`` +
  ``optimize_parameters``, in two worker processes: glibc's default allocator (as shipped) and the
  environment form of our setting (see ``benchmarks/side_by_side.py``).

The repository's CycleGAN cannot run under its own ``train.py`` as committed; the harness supplies two
things around the unmodified code: ``cycle_gan_model.py`` reads ``opt.amp``, which no option defines
(set to ``False``: no apex mixed precision), and its ``data_dependent_initialize`` takes no data (called
without it).

``--ours-precisions fp32 bf16`` times our code in several precisions side by side (``scv-cut-train
--precision``: bf16 autocast of the network forward passes; ``auto`` resolves on the worker's device), one
worker per precision: the first is the reference ``ours``, the others are ``ours-<precision>``; every ratio
is given relative to each of our workers (``ratio_to`` in the JSON; ``ratio_to_ours`` is the one to the
first). The default, ``fp32``, times our code alone in fp32.

For each (model, crop) the workers start together, each runs ``--warmup`` untimed iterations, then
``--rounds`` rounds of ``--iters`` iterations (``--iters-256`` from crop 256 up), interleaved across the
workers (``benchmarks/side_by_side.py``); a worker's peak RSS is read when it exits. The workers of one
(model, crop) are alive at the same time, so the machine needs the sum of their peak memory.
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.side_by_side import (
    NO_OFFICIAL,
    OURS,
    REPO,
    Config,
    check_official_dir,
    command_line,
    compare_rounds,
    configurations,
    format_ratio,
    interleave,
    load_average,
    markdown_header,
    median_of_rounds,
    official_commit,
    open_workers,
    protocol_stream,
    serve,
    time_calls,
    utc_now,
)

OFFICIAL_REPO = "https://github.com/taesungp/contrastive-unpaired-translation"
OFFICIAL_FILES = (
    "train.py",
    "models/cut_model.py",
    "models/cycle_gan_model.py",
    "models/networks.py",
    "options/train_options.py",
)
OFFICIAL_MODEL_ARGS = {
    "cut": ["--model", "cut", "--CUT_mode", "CUT"],
    "fastcut": ["--model", "cut", "--CUT_mode", "FastCUT"],
    "cyclegan": ["--model", "cycle_gan"],
}
CODE_PATHS = ("benchmarks/*.py", "cut_translation", "ssl_shared", "experiments/provenance.py")
PRECISION_CHOICES = ("fp32", "bf16", "auto")


def official_options(model: str, crop: int, device: str, checkpoints: Path, name: str) -> list[str]:
    """Command-line options of the official ``train.py`` for ``model`` (its defaults otherwise)."""
    return [
        *OFFICIAL_MODEL_ARGS[model],
        "--gpu_ids",
        "0" if device.startswith("cuda") else "-1",
        "--crop_size",
        str(crop),
        "--load_size",
        str(crop),
        "--checkpoints_dir",
        str(checkpoints),
        "--name",
        name,
        "--display_id",
        "0",
    ]


# ----------------------------------------------------------------------------------- workers
def _setup(args: argparse.Namespace, crop: int) -> tuple[Any, Any, Any, Callable[[], None] | None]:
    """Seeds, threads; the device and the two random input images on it."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    a, b = (torch.rand(1, 3, crop, crop, generator=gen) * 2 - 1 for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    return device, a.to(device), b.to(device), sync


def ours_worker(spec: Mapping[str, Any], args: argparse.Namespace) -> None:
    stream = protocol_stream()
    import torch

    from cut_translation.models import build_model
    from ssl_shared.host_memory import reuse_freed_host_memory
    from ssl_shared.precision import resolve_precision

    reuse_freed_host_memory()  # as scv-cut-train
    device, a, b, sync = _setup(args, spec["crop"])
    precision = resolve_precision(spec["precision"], device)
    model = build_model(spec["model"], precision=precision).to(device)
    step = lambda: model.train_step(a, b)  # noqa: E731
    serve(
        {"iterations": lambda n: time_calls(step, n, sync)},
        stream,
        {"device": str(device), "torch_threads": torch.get_num_threads(), "precision": precision},
    )


def official_worker(spec: Mapping[str, Any], args: argparse.Namespace) -> None:
    stream = protocol_stream()
    sys.path.insert(0, str(args.official_dir))
    import torch

    device, a, b, sync = _setup(args, spec["crop"])
    sys.argv = [
        "train.py",
        *official_options(spec["model"], spec["crop"], args.device, Path.cwd() / "checkpoints", spec["name"]),
    ]  # its options also read sys.argv directly
    from models import create_model  # the official modules
    from options.train_options import TrainOptions

    opt = TrainOptions().parse()
    if not hasattr(opt, "amp"):  # cycle_gan_model.py reads it; no option defines it (see the module docstring)
        opt.amp = False
    model = create_model(opt)
    data = {"A": a, "B": b, "A_paths": ["A"], "B_paths": ["B"]}
    if inspect.signature(model.data_dependent_initialize).parameters:  # as train.py, before the first iteration
        model.data_dependent_initialize(data)
    else:  # cycle_gan_model.py's takes no data
        model.data_dependent_initialize()
    model.setup(opt)
    model.parallelize()

    def step() -> None:
        model.set_input(data)
        model.optimize_parameters()

    serve(
        {"iterations": lambda n: time_calls(step, n, sync)},
        stream,
        {
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "options": OFFICIAL_MODEL_ARGS[spec["model"]],
        },
    )


# ----------------------------------------------------------------------------------- the benchmark
def measure(
    workers: Mapping[str, Callable[..., dict]],
    warmup: int,
    rounds: int,
    iters: int,
    references: Sequence[str] = (OURS,),
) -> dict[str, Any]:
    """Warm-up, then ``rounds`` interleaved rounds of ``iters`` iterations over ``workers``; ratios to each of
    ``references`` (our workers; the first is ``ours``)."""
    for call in workers.values():
        call("iterations", n=warmup)
    replies = interleave({n: (lambda c=c: c("iterations", n=iters)) for n, c in workers.items()}, rounds)
    out: dict[str, Any] = {}
    for key, sample in (("wall_s_per_iter", "wall_s"), ("cpu_s_per_iter", "cpu_s")):
        samples = {n: [r[sample] for r in rs] for n, rs in replies.items()}
        out[key] = compare_rounds(samples)
        out[key]["ratio_to"] = {ref: compare_rounds(samples, ours=ref)["ratio_to_ours"] for ref in references}
    out["minor_faults_per_iter"] = median_of_rounds({n: [r["minor_faults"] for r in rs] for n, rs in replies.items()})
    return out


def our_configurations(with_official: bool, precisions: Sequence[str]) -> tuple[list[Config], dict[str, str]]:
    """The workers (ours once per precision, then the official ones) and each of our workers' precision."""
    ours, *official = configurations(with_official)
    names = [OURS if k == 0 else f"{OURS}-{p}" for k, p in enumerate(precisions)]
    return [replace(ours, name=n) for n in names] + official, dict(zip(names, precisions))


def worker_argv(
    config: Config, model: str, crop: int, args: argparse.Namespace, precision: str | None = None
) -> list[str]:
    spec = {"impl": config.impl, "model": model, "crop": crop, "name": config.name, "precision": precision}
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        json.dumps(spec),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
    ]
    if config.impl == "official":
        argv += ["--official-dir", str(args.official_dir)]
    return argv


def run(
    args: argparse.Namespace, argv: Sequence[str], out: Path | None, start_workers: Callable = open_workers
) -> dict[str, Any]:
    """Every (crop, model) in turn with fresh workers; the result is rewritten to ``out`` after each."""
    from ssl_shared.provenance import git_commit, hardware, package_versions

    configs, precisions = our_configurations(args.official_dir is not None, args.ours_precisions)
    start = time.time()
    result: dict[str, Any] = {
        "benchmark": "cut_throughput",
        "device": args.device,
        "rows": [],
        "configurations": {
            c.name: {"code": c.impl, "allocator": c.allocator, "precision": precisions.get(c.name, "as shipped")}
            for c in configs
        },
        "settings": {
            "batch": 1,
            "ngf": 64,
            "ndf": 64,
            **{
                k: getattr(args, k)
                for k in (
                    "models",
                    "crops",
                    "threads",
                    "warmup",
                    "rounds",
                    "iters",
                    "iters_256",
                    "seed",
                    "ours_precisions",
                )
            },
        },
        "official": (
            {"measured": True, "repository": OFFICIAL_REPO, **official_commit(Path(args.official_dir))}
            if args.official_dir
            else {"measured": False, "note": NO_OFFICIAL}
        ),
        "provenance": {
            "command": command_line("benchmarks/cut_throughput.py", argv),
            "git_commit": git_commit(paths=CODE_PATHS),
            "hardware": hardware(),
            "torch_threads": args.threads,
            "load_average_before": load_average(),
            "date_utc": utc_now(),
            "seed": args.seed,
            "versions": package_versions(["torch", "torchvision", "numpy"]),
        },
    }
    for crop in args.crops:
        for model in args.models:
            with tempfile.TemporaryDirectory(prefix="cut_throughput_") as tmp:
                argvs = {c.name: worker_argv(c, model, crop, args, precisions.get(c.name)) for c in configs}
                with start_workers(argvs, configs, args.threads, Path(tmp)) as workers:
                    ready = {n: w.info for n, w in workers.items()}
                    iters = args.iters if crop < 256 else args.iters_256
                    row = measure(workers, args.warmup, args.rounds, iters, references=list(precisions))
                    row["peak_rss_bytes"] = {n: w.close()["peak_rss_bytes"] for n, w in workers.items()}
            result["rows"].append({"model": model, "crop": crop, "workers": ready, **row})
            result["provenance"].update(load_average_after=load_average(), wall_time_s=round(time.time() - start, 1))
            print(
                json.dumps(
                    {
                        "model": model,
                        "crop": crop,
                        "s_per_iter": row["wall_s_per_iter"]["median"],
                        "peak_rss_bytes": row["peak_rss_bytes"],
                    }
                ),
                flush=True,
            )
            if out is not None:  # partial results survive an interruption
                write_result(result, out)
    return result


def markdown(result: Mapping[str, Any]) -> str:
    names, s = list(result["configurations"]), result["settings"]
    lines = markdown_header("CUT / FastCUT / CycleGAN training iteration", result)
    lines += [
        f"Batch 1, ngf {s['ngf']}, ndf {s['ndf']}, official defaults; random inputs on the device. Per "
        f"(model, crop): {s['warmup']} warm-up iteration(s), then {s['rounds']} rounds interleaved across the "
        f"workers (first worker rotating) of {s['iters']} iteration(s) ({s['iters_256']} from crop 256 up).",
        "",
        "| worker | code | precision | allocator |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {c['code']} | {c.get('precision', 'fp32' if c['code'] == 'ours' else 'as shipped')} | "
        f"{c['allocator']} |"
        for n, c in result["configurations"].items()
    ]
    references = [n for n, c in result["configurations"].items() if c["code"] == "ours"]
    lines += [
        "",
        "Ratio to X = that worker's wall time / X's, per round; median [min, max] over rounds (> 1: X is "
        "faster). CPU s: user + system time of the process over all threads.",
        "",
        "| model | crop | worker | wall s/it per round | wall s/it | CPU s/it | minor faults/it | peak RSS GB | "
        + " | ".join(f"ratio to {r}" for r in references)
        + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(references),
    ]
    for row in result["rows"]:
        wall, cpu = row["wall_s_per_iter"], row["cpu_s_per_iter"]
        ratios = wall.get("ratio_to", {OURS: wall["ratio_to_ours"]})
        for n in names:
            rounds = " / ".join(f"{v:.2f}" for v in wall["per_round"][n])
            lines.append(
                f"| {row['model']} | {row['crop']} | {n} | {rounds} | {wall['median'][n]:.2f} | "
                f"{cpu['median'][n]:.2f} | {row['minor_faults_per_iter'][n]:.0f} | "
                f"{row['peak_rss_bytes'][n] / 1e9:.2f} | "
                + " | ".join(format_ratio(ratios.get(r, {}).get(n)) for r in references)
                + " |"
            )
    return "\n".join(lines) + "\n"


def write_result(result: Mapping[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official-dir", help=f"a checkout of {OFFICIAL_REPO} (without it: ours alone, no ratio)")
    p.add_argument("--models", nargs="+", default=list(OFFICIAL_MODEL_ARGS), choices=list(OFFICIAL_MODEL_ARGS))
    p.add_argument("--crops", nargs="+", type=int, default=[128, 256])
    p.add_argument("--threads", type=int, default=2, help="torch threads of every worker (OMP_NUM_THREADS too)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (both codes run on it)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per worker")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=2, help="timed iterations per round and worker below crop 256")
    p.add_argument("--iters-256", type=int, default=1, help="timed iterations per round and worker from crop 256")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--ours-precisions",
        nargs="+",
        default=["fp32"],
        choices=PRECISION_CHOICES,
        help="our code once per precision, side by side (scv-cut-train --precision); the first is the reference 'ours'",
    )
    p.add_argument(
        "--out",
        default=None,
        help="result path without suffix (default benchmarks/results/cut_throughput_<device>_<threads>threads)",
    )
    p.add_argument("--worker", type=json.loads, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None, start_workers: Callable = open_workers) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.worker:
        return (official_worker if args.worker["impl"] == "official" else ours_worker)(args.worker, args)
    if len(set(args.ours_precisions)) != len(args.ours_precisions):
        raise SystemExit(f"error: --ours-precisions {' '.join(args.ours_precisions)}: a precision given twice")
    if args.official_dir is not None:
        try:
            args.official_dir = str(check_official_dir(args.official_dir, OFFICIAL_FILES, OFFICIAL_REPO))
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
    else:
        print(NO_OFFICIAL, file=sys.stderr)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device_type = args.device.split(":")[0]
    out = Path(args.out or REPO / "benchmarks" / "results" / f"cut_throughput_{device_type}_{args.threads}threads")
    result = run(args, argv, out, start_workers)
    print(markdown(result))


if __name__ == "__main__":
    main()
