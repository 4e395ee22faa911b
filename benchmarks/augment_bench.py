"""Time the hot augmentations (random crop, random shift, colour jitter) of ``ssl_shared.augment``.

Reports milliseconds per call (median over repeats, after warm-up) on frame-stacked uint8 batches
of 9 x 100 x 100 (three RGB frames, CURL's pre-crop observation) for each batch size, on the CPU and,
when ``torch.cuda.is_available()``, on CUDA (synchronised before each clock read). For comparison on
the same machine it times an independent numpy windowed crop: a strided window view of shape
(B, n, n, C, h, w) indexed with one offset pair per sample, which is what CURL's
``view_as_windows`` crop does (written here from that description).

Usage (results go to benchmarks/results/augment_<device>.{json,md}):

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/augment_bench.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from experiments.provenance import git_commit
from ssl_shared.augment import color_jitter, crop_at, random_crop, random_shift

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CHANNELS, SIDE, CROP, PAD = 9, 100, 84, 4


def numpy_window_crop(images: np.ndarray, tops: np.ndarray, lefts: np.ndarray, size: int) -> np.ndarray:
    """Crop ``images[i, :, tops[i]:tops[i]+size, lefts[i]:lefts[i]+size]`` for every i, numpy only.

    Builds a read-only strided view of every ``size x size`` window, shape (B, n, n, C, size, size)
    with ``n = H - size + 1``, and gathers one window per sample with fancy indexing (one copy).
    """
    batch, channels, height, width = images.shape
    s_b, s_c, s_h, s_w = images.strides
    n_h, n_w = height - size + 1, width - size + 1
    windows = np.lib.stride_tricks.as_strided(
        images,
        shape=(batch, n_h, n_w, channels, size, size),
        strides=(s_b, s_h, s_w, s_c, s_h, s_w),
        writeable=False,
    )
    return windows[np.arange(batch), tops, lefts]


def numpy_random_crop(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The numpy baseline as used in training: draw offsets 0..H-h inclusive, then crop."""
    batch, _, height, width = images.shape
    tops = rng.integers(0, height - CROP + 1, batch)
    lefts = rng.integers(0, width - CROP + 1, batch)
    return numpy_window_crop(images, tops, lefts, CROP)


def check_baseline() -> None:
    """Refuse to time anything unless the numpy baseline and ``crop_at`` cut the same windows."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (16, CHANNELS, SIDE, SIDE), dtype=np.uint8)
    tops, lefts = rng.integers(0, SIDE - CROP + 1, 16), rng.integers(0, SIDE - CROP + 1, 16)
    expected = crop_at(torch.from_numpy(images), torch.from_numpy(tops), torch.from_numpy(lefts), CROP)
    if not np.array_equal(numpy_window_crop(images, tops, lefts, CROP), expected.numpy()):
        raise RuntimeError("numpy_window_crop disagrees with ssl_shared.augment.crop_at")


def time_call(fn: Callable[[], object], repeats: int, warmup: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median / min / max milliseconds of ``fn`` over ``repeats`` timed calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": repeats,
        "warmup": warmup,
    }


def cpu_model() -> str:
    """The 'model name' line of /proc/cpuinfo (or the platform string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_device(
    device: torch.device, batch_sizes: list[int], repeats: int, jitter_repeats: int, warmup: int
) -> list[dict]:
    """Time each op at each batch size on ``device``; returns one row per (op, batch size)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for batch in batch_sizes:
        generator = torch.Generator(device=device).manual_seed(0)
        x = torch.randint(0, 256, (batch, CHANNELS, SIDE, SIDE), dtype=torch.uint8, device=device, generator=generator)
        jitter_name = "SimCLR strengths 0.8/0.8/0.8/0.2"
        cases: list[tuple[str, str, Callable[[], object], int]] = [
            ("random_crop", f"{SIDE}->{CROP}", partial(random_crop, x, CROP, generator=generator), repeats),
            ("random_shift", f"replicate pad {PAD}", partial(random_shift, x, PAD, generator=generator), repeats),
            (
                "color_jitter",
                f"{jitter_name}, per-sample random order",
                partial(color_jitter, x, generator=generator),
                jitter_repeats,
            ),
            (
                "color_jitter",
                f"{jitter_name}, fixed order",
                partial(color_jitter, x, random_order=False, generator=generator),
                jitter_repeats,
            ),
        ]
        if device.type == "cpu":
            crop = partial(numpy_random_crop, x.numpy(), np.random.default_rng(0))
            cases.insert(1, ("numpy_window_crop (baseline)", f"{SIDE}->{CROP}", crop, repeats))
        for name, detail, fn, n in cases:
            stats = time_call(fn, n, warmup, sync)
            row = {"op": name, "detail": detail, "device": str(device), "shape": [batch, CHANNELS, SIDE, SIDE]}
            rows.append({**row, "dtype": "uint8", **stats})
            print(f"{device} B={batch:4d} {name:30s} {stats['median_ms']:9.2f} ms", flush=True)
    return rows


def write_markdown(path: Path, meta: dict, rows: list[dict]) -> None:
    lines = [
        f"# ssl_shared.augment timings ({meta['device']})",
        "",
        f"- command: `{meta['command']}`",
        f"- commit: {meta['commit']}",
        f"- date (UTC): {meta['date_utc']}; wall time {meta['wall_s']:.0f} s",
        f"- CPU: {meta['cpu_model']} ({meta['cpu_count']} cores visible); GPU: {meta['gpu']}",
        f"- torch {meta['torch']}, numpy {meta['numpy']}, python {meta['python']}",
        f"- threads: torch.get_num_threads()={meta['torch_threads']}, OMP_NUM_THREADS={meta['omp_num_threads']}, "
        f"nice {meta['niceness']}",
        f"- load average before / after: {meta['load_before']} / {meta['load_after']}",
        "",
        "Median milliseconds per call after warm-up; input uint8 (B, 9, 100, 100); seeds 0.",
        "",
        "| op | detail | B | median ms | min ms | max ms | repeats |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['op']} | {r['detail']} | {r['shape'][0]} | {r['median_ms']:.2f} | {r['min_ms']:.2f} | "
            f"{r['max_ms']:.2f} | {r['repeats']} |"
        )
    lines += ["", meta["note"], ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=30, help="timed calls for crop/shift/numpy")
    parser.add_argument("--jitter-repeats", type=int, default=7, help="timed calls for colour jitter")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default="", help="suffix of the result files, e.g. '_1thread'")
    parser.add_argument(
        "--note",
        default="The 2-core CPU was shared with other processes during the run, so timings are noisy upper bounds.",
    )
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1 or args.repeats < 1 or args.jitter_repeats < 1 or args.warmup < 0:
        raise ValueError(f"batch sizes and repeats must be positive, got {vars(args)}")
    if not all(ch.isalnum() or ch in "_-" for ch in args.tag):
        raise ValueError(f"--tag may hold letters, digits, '_' and '-' only, got {args.tag!r}")
    check_baseline()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for device in devices:
        load_before = os.getloadavg()
        start = time.time()
        rows = bench_device(device, args.batch_sizes, args.repeats, args.jitter_repeats, args.warmup)
        meta = {
            "device": device.type,
            "command": shlex.join(
                [f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", sys.executable, *sys.argv]
            ),
            "commit": git_commit(paths=("ssl_shared/augment", "benchmarks/augment_bench.py")),
            "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "wall_s": time.time() - start,
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "none used",
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
            "niceness": os.nice(0),
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "note": args.note,
        }
        stem = args.out_dir / f"augment_{device.type}{args.tag}"
        tmp = stem.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
        os.replace(tmp, stem.with_suffix(".json"))
        write_markdown(stem.with_suffix(".md"), meta, rows)
        print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
