"""Where a number came from: the command, the code version, the libraries and the detected hardware.

Every trainer writes :func:`run_provenance` into its run folder when it starts (and again on each resume),
so results can be traced without any launcher code, and nothing about the machine is written by hand:
the processor model and its relevant instruction sets, the GPU, the thread count and the load are read
from the machine.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: CPU instruction-set flags that decide which kernels (and which precision) are fast.
CPU_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")

#: Distributions whose versions every run records.
CORE_PACKAGES = ("torch", "torchvision", "numpy", "stable-baselines3", "gymnasium", "dm-control", "mujoco")


def git_commit(repo: Path = REPO, paths: Sequence[str] = ()) -> str:
    """HEAD, marked ``" + uncommitted changes"`` when the working tree differs from it.

    ``paths`` (git pathspecs, e.g. ``("curl_agents", "experiments/*.py")``) limits that check to the
    code the numbers depend on, so that result files a job writes itself do not mark it; empty means
    the whole tree. ``"uncommitted"`` outside git.
    """
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", *paths],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "uncommitted"
    return f"{head} + uncommitted changes" if dirty else head


def package_versions(names: Sequence[str] = CORE_PACKAGES) -> dict[str, str]:
    """Python's version and each distribution's in ``names`` (``"not installed"`` when absent)."""

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), **{name: installed(name) for name in names}}


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """Processor model, the flags of :data:`CPU_FLAGS_OF_INTEREST` it has, its CPUs, torch's kernel level
    (``ATEN_CPU_CAPABILITY`` can lower it) and oneDNN's instruction-set cap (``ONEDNN_MAX_CPU_ISA``, if set)."""
    import torch

    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return {
        "model": model,
        "flags": [f for f in CPU_FLAGS_OF_INTEREST if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"),
    }


def gpu_info() -> list[dict[str, Any]]:
    """Name, memory and compute capability of each visible CUDA device (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpus.append(
            {
                "name": props.name,
                "memory_gib": round(props.total_memory / 2**30, 1),
                "capability": f"{props.major}.{props.minor}",
                "cuda": torch.version.cuda,
            }
        )
    return gpus


def hardware(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The machine as detected now: CPU (model, flags, cores, torch kernel level), GPUs, torch threads, load."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu_info(cpuinfo),
        "gpus": gpu_info(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(x, 2) for x in load] if load else None,
        "platform": platform.platform(),
    }


def hardware_line(info: dict[str, Any] | None = None) -> str:
    """One readable line, e.g. ``Intel Xeon ... (avx2, avx512f, amx_bf16), 2 CPUs, 2 torch threads, no GPU``."""
    info = info or hardware()
    cpu = info["cpu"]
    gpus = ", ".join(g["name"] for g in info["gpus"]) or "no GPU"
    flags = f" ({', '.join(cpu['flags'])})" if cpu["flags"] else ""
    return f"{cpu['model']}{flags}, {cpu['usable_cpus']} CPUs, {info['torch_threads']} torch threads, {gpus}"


def relative_command(argv: Sequence[str] | None = None, repo: Path = REPO) -> str:
    """The command line with repository paths relative to its root: ``python -m curl_agents.train --env ...``.

    A module run with ``-m`` shows as ``python -m package.module``, a script inside the repository as
    ``python path/inside/repo.py``, a console script by its name.
    """
    argv = [str(a) for a in (sys.argv if argv is None else argv)]
    if not argv:
        return ""
    program, root = Path(argv[0]), str(repo.resolve()) + os.sep
    rest = [a.replace(root, "") for a in argv[1:]]
    try:
        inside = program.resolve().relative_to(repo.resolve())
    except ValueError:
        inside = None
    if inside is not None and inside.suffix == ".py":
        parts = inside.with_suffix("").parts
        if (repo / parts[0] / "__init__.py").exists():
            module = ".".join(parts[:-1] if parts[-1] == "__main__" else parts)
            return shlex.join(["python", "-m", module, *rest])
        return shlex.join(["python", str(inside), *rest])
    return shlex.join([program.name, *rest])


def run_provenance(argv: Sequence[str] | None = None, code_paths: Sequence[str] = ()) -> dict[str, Any]:
    """Everything a result needs to be traced: command, commit, versions, hardware, time."""
    return {
        "command": relative_command(argv),
        "git_commit": git_commit(paths=code_paths),
        "versions": package_versions(),
        "hardware": hardware(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def record_launch(out: str | Path, argv: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Append this launch's provenance (plus ``extra``) to ``out/launches.json``; returns the record."""
    import json

    from ssl_shared.run_dir import atomic_write_json

    path = Path(out) / "launches.json"
    launches = json.loads(path.read_text()) if path.exists() else []
    record = {**run_provenance(argv), **extra}
    launches.append(record)
    atomic_write_json(path, launches)
    return record
