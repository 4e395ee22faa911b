"""Seconds per training iteration and peak memory of CUT, FastCUT and CycleGAN (batch 1, paper settings).

Paper settings: ResNet-9 generator, ngf 64, PatchGAN ndf 64, anti-aliased resampling, 256 patches on
layers 0,4,8,12,16, lsgan, Adam; random inputs of crop x crop (data loading excluded). Every
(model, crop, implementation) runs in a fresh subprocess; it does ``warmup`` iterations, then times
``repeats`` iterations and reports the median wall seconds, the median process CPU seconds
(user + sys, all threads) per iteration and the peak RSS (``resource.getrusage().ru_maxrss``).

Implementations timed under the same conditions, interleaved:

- ``ours``: ``cut_translation.models`` as shipped, in a process set up as our training commands set it
  up (:func:`ssl_shared.host_memory.reuse_freed_host_memory`: freed memory is reused instead of being
  page-faulted in anew every iteration);
- ``ours-default-malloc``: the same models with glibc's default allocator settings (what the
  allocator setting alone is worth);
- ``reference-style``: the same networks made to compute what the official CUT code computes per
  iteration (written here from the facts in the reference notes, not its code): ``nn.InstanceNorm2d``
  instead of our group-norm form, blur-pool as a
  depthwise [1,2,1]^2/16 convolution, anti-aliased up-sampling as a depthwise transposed convolution
  with the [1,3,3,1]^2 filter, CUT's four separate encoder passes for PatchNCE (keys with autograd on),
  separate discriminator calls for real and fake; CycleGAN's six separate generator calls.

The machine is shared; wall times include waiting for the CPU, so compare rows of one run only.
Reference (issue 4): the official CUT code on this 2-core CPU, unloaded, 2 threads: CUT 3.7 / 12.7 s,
FastCUT 1.9 / 7.2 s, CycleGAN 6.6 / ~22-25 s per iteration at crop 128 / 256; peak RSS CUT 1.6 / 3.3 GB,
FastCUT 1.4 / 2.5 GB, CycleGAN 2.3 / 5.4 GB.

Usage (results in benchmarks/results/cut_throughput_<device>.{json,md})::

    nice -n 10 .venv/bin/python benchmarks/cut_throughput.py --threads 2    # the reference setting
    nice -n 10 .venv/bin/python benchmarks/cut_throughput.py --threads 1 --repeats 2 --repeats-256 1

On the shared machine (load average > 10 on 2 cores) the committed run used one thread: with two,
the OpenMP threads spin-wait for each other whenever one is descheduled, which inflates both wall and
CPU time erratically. The per-process CPU seconds of ``ours`` vs ``reference-style`` are the comparable
numbers; the official figures above were taken on an unloaded machine with two threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from experiments.provenance import git_commit
from ssl_shared.host_memory import reuse_freed_host_memory

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REFERENCE = {  # issue 4, section 5: official CUT code, this CPU, unloaded, batch 1, ngf 64
    ("cut", 128): (3.7, 1.6), ("cut", 256): (12.7, 3.3),
    ("fastcut", 128): (1.9, 1.4), ("fastcut", 256): (7.2, 2.5),
    ("cyclegan", 128): (6.6, 2.3), ("cyclegan", 256): (23.5, 5.4),  # 22-25 s: midpoint
}


class DepthwiseBlurPool(nn.Module):
    """The CUT code's Downsample: reflect pad 1, depthwise [1,2,1]^2/16 conv, stride 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.tensor([1.0, 2.0, 1.0], device=x.device)
        filt = (a[:, None] * a[None, :] / 16).expand(x.shape[1], 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), filt, stride=2, groups=x.shape[1])


class TransposedBlurUpsample(nn.Module):
    """The CUT code's Upsample: replicate pad 1, depthwise transposed [1,3,3,1]^2/16 conv, stride 2, crop."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.tensor([1.0, 3.0, 3.0, 1.0], device=x.device)
        filt = (a[:, None] * a[None, :] / 16).expand(x.shape[1], 1, 4, 4)
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), filt, stride=2, padding=2,
                               groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]


def to_reference_ops(model: nn.Module) -> None:
    """Swap our blur-pool / up-sampling / norm modules for the CUT code's forms (same values)."""
    from cut_translation.networks import BlurPool, BlurUpsample, InstanceNorm

    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, BlurPool):
                setattr(module, name, DepthwiseBlurPool())
            elif isinstance(child, BlurUpsample):
                setattr(module, name, TransposedBlurUpsample())
            elif isinstance(child, InstanceNorm):
                setattr(module, name, nn.InstanceNorm2d(child.num_channels))


def reference_cut_step(model, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
    """One CUT/FastCUT iteration as the official code computes it (see the module docstring)."""
    from cut_translation.models.cut import set_requires_grad
    from cut_translation.models.gan_loss import discriminator_loss, generator_loss

    c = model.config
    layers = c.nce_layers
    real = torch.cat([real_a, real_b]) if c.nce_idt else real_a
    flipped = c.flip_equivariance and bool(torch.rand(()) < 0.5)
    fake = model.netG(torch.flip(real, [3]) if flipped else real)
    fake_b = fake[: real_a.shape[0]]
    set_requires_grad(model.netD, True)
    model.optimizers["D"].zero_grad()
    loss_d = discriminator_loss(model.netD(real_b), model.netD(fake_b.detach()), c.gan_mode)
    loss_d.backward()
    model.optimizers["D"].step()
    set_requires_grad(model.netD, False)
    model.optimizers["G"].zero_grad()
    model.optimizers["F"].zero_grad()
    loss = generator_loss(model.netD(fake_b), c.gan_mode)

    def nce(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        feat_q = model.netG.encode(tgt, layers)
        if flipped:
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        feat_k = model.netG.encode(src, layers)  # with autograd on, as in the official code
        return model.nce_loss(feat_q, feat_k, flipped=False)

    nce_x = nce(real_a, fake_b)
    loss = loss + (0.5 * (nce_x + nce(real_b, fake[real_a.shape[0]:])) if c.nce_idt else nce_x)
    loss.backward()
    model.optimizers["G"].step()
    model.optimizers["F"].step()


def reference_cyclegan_step(model, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
    """One CycleGAN iteration with six separate generator calls and separate D calls."""
    from cut_translation.models.cut import set_requires_grad
    from cut_translation.models.gan_loss import discriminator_loss, generator_loss

    c = model.config
    fake_b = model.netG_A(real_a)
    rec_a = model.netG_B(fake_b)
    fake_a = model.netG_B(real_b)
    rec_b = model.netG_A(fake_a)
    for d in (model.netD_A, model.netD_B):
        set_requires_grad(d, False)
    model.optimizers["G"].zero_grad()
    idt_a, idt_b = model.netG_A(real_b), model.netG_B(real_a)
    lam, lam_i = c.lambda_cycle, c.lambda_cycle * c.lambda_identity
    loss = (generator_loss(model.netD_A(fake_b)) + generator_loss(model.netD_B(fake_a))
            + lam * ((rec_a - real_a).abs().mean() + (rec_b - real_b).abs().mean())
            + lam_i * ((idt_a - real_b).abs().mean() + (idt_b - real_a).abs().mean()))
    loss.backward()
    model.optimizers["G"].step()
    for d in (model.netD_A, model.netD_B):
        set_requires_grad(d, True)
    model.optimizers["D"].zero_grad()
    pb, pa = model.pool_fake_b.query(fake_b), model.pool_fake_a.query(fake_a)
    discriminator_loss(model.netD_A(real_b), model.netD_A(pb.detach())).backward()
    discriminator_loss(model.netD_B(real_a), model.netD_B(pa.detach())).backward()
    model.optimizers["D"].step()


def measure(model_name: str, crop: int, impl: str, warmup: int, repeats: int, threads: int, device: str) -> dict:
    """Run inside the worker subprocess: build, warm up, time; returns the measurement."""
    from cut_translation.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    if impl == "ours":
        reuse_freed_host_memory()
    model = build_model(model_name).to(dev)
    if impl == "reference-style":
        to_reference_ops(model)
        step = reference_cyclegan_step if model_name == "cyclegan" else reference_cut_step
    else:
        step = type(model).train_step
    a = (torch.rand(1, 3, crop, crop, device=dev) * 2 - 1)
    b = (torch.rand(1, 3, crop, crop, device=dev) * 2 - 1)
    walls, cpus = [], []
    for i in range(warmup + repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        step(model, a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    out = {
        "model": model_name, "crop": crop, "impl": impl, "device": device, "threads": threads,
        "warmup": warmup, "repeats": repeats, "wall_s_per_iter_median": statistics.median(walls),
        "wall_s_per_iter_all": walls, "cpu_s_per_iter_median": statistics.median(cpus),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    if dev.type == "cuda":
        out["peak_cuda_gb"] = torch.cuda.max_memory_allocated() / 1024**3
    return out


def write_results(rows: list[dict], meta: dict, device: str) -> None:
    device = device + meta.get("tag", "")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"cut_throughput_{device}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# CUT / FastCUT / CycleGAN training throughput ({device}, batch 1, ngf 64, 9 blocks)", "",
        f"Command: `{meta['command']}`  ", f"Commit: {meta['git_commit']}; {meta['hardware']}; torch {meta['torch']}, "
        f"python {meta['python']}; threads {meta['threads']}; warm-up {meta['warmup']}, median of {meta['repeats']} "
        f"(crop 128) / {meta['repeats_256']} (crop 256) iterations; date {meta['date']}.", "",
        "Wall seconds include time spent waiting for the shared CPU (load average at start: "
        f"{meta['load_average_start']}, at end: {meta.get('load_average_end')}); CPU seconds are user+sys of "
        "the process over all threads. Speed-up = reference-style / ours, measured in the same run; "
        "vs official = the issue's official wall s/it / ours (comparable only for an unloaded 2-thread run).", "",
        *([f"Note: {meta['note']}", ""] if meta.get("note") else []),
        "| model | crop | ours wall s/it | ours CPU s/it | ours peak RSS GB | reference-style wall s/it | "
        "reference-style CPU s/it | ref-style RSS GB | speed-up wall | speed-up CPU | issue-4 official s/it, RSS GB | "
        "vs official (wall) | ours, default malloc: wall s/it, CPU s/it, RSS GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r["model"], r["crop"], r["impl"]): r for r in rows}
    for (model, crop), (ref_s, ref_gb) in REFERENCE.items():
        ours, ref = by_key.get((model, crop, "ours")), by_key.get((model, crop, "reference-style"))
        if ours is None:
            continue
        cells = [f"{ours['wall_s_per_iter_median']:.2f}", f"{ours['cpu_s_per_iter_median']:.2f}",
                 f"{ours['peak_rss_gb']:.2f}"]
        if ref is not None:
            cells += [f"{ref['wall_s_per_iter_median']:.2f}", f"{ref['cpu_s_per_iter_median']:.2f}",
                      f"{ref['peak_rss_gb']:.2f}",
                      f"{ref['wall_s_per_iter_median'] / ours['wall_s_per_iter_median']:.2f}x",
                      f"{ref['cpu_s_per_iter_median'] / ours['cpu_s_per_iter_median']:.2f}x"]
        else:
            cells += ["-"] * 5
        vs_official = ref_s / ours["wall_s_per_iter_median"]
        plain = by_key.get((model, crop, "ours-default-malloc"))
        plain_cell = "-" if plain is None else (
            f"{plain['wall_s_per_iter_median']:.2f}, {plain['cpu_s_per_iter_median']:.2f}, {plain['peak_rss_gb']:.2f}")
        lines.append(f"| {model} | {crop} | " + " | ".join(cells) + f" | {ref_s}, {ref_gb} | {vs_official:.2f}x | "
                     f"{plain_cell} |")
    (RESULTS_DIR / f"cut_throughput_{device}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rewrite", default=None, help="re-render the .md of a results .json (no measuring)")
    p.add_argument("--models", nargs="+", default=["cut", "fastcut", "cyclegan"])
    p.add_argument("--crops", nargs="+", type=int, default=[128, 256])
    p.add_argument("--impls", nargs="+", default=["ours", "reference-style"],
                   choices=["ours", "ours-default-malloc", "reference-style"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed iterations at crop 128")
    p.add_argument("--repeats-256", type=int, default=2, help="timed iterations at crop >= 256")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    p.add_argument("--note", default="", help="free text for the results file (e.g. how the machine was idled)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rewrite:
        stored = json.loads(Path(args.rewrite).read_text())
        write_results(stored["rows"], stored["meta"], stored["meta"].get("device", "cpu"))
        return
    if args.worker:  # child process: one measurement, printed as JSON
        model, crop, impl = args.worker.split(":")
        reps = args.repeats if int(crop) < 256 else args.repeats_256
        print(json.dumps(measure(model, int(crop), impl, args.warmup, reps, args.threads, args.device)))
        return
    import os

    meta = {
        "command": " ".join([sys.executable, *sys.argv]), "git_commit": git_commit(),
        "hardware": "shared 2-core CPU, no GPU" if args.device == "cpu" else torch.cuda.get_device_name(),
        "torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
        "warmup": args.warmup, "repeats": args.repeats, "repeats_256": args.repeats_256,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "tag": args.tag, "device": args.device,
        "note": args.note,
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
    }
    rows: list[dict] = []
    start = time.time()
    for crop in args.crops:
        for model in args.models:
            for impl in args.impls:  # interleaved, so both see similar load
                cmd = [sys.executable, __file__, "--worker", f"{model}:{crop}:{impl}", "--warmup", str(args.warmup),
                       "--repeats", str(args.repeats), "--repeats-256", str(args.repeats_256),
                       "--threads", str(args.threads), "--device", args.device]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "wall_s_per_iter_all"}), flush=True)
                meta["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
                meta["wall_seconds_total"] = round(time.time() - start, 1)
                write_results(rows, meta, args.device)  # partial results survive an interruption


if __name__ == "__main__":
    main()
