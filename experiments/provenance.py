"""Provenance for committed results: the git commit, the package versions and the hardware the numbers came from."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Python's version and each distribution's in ``names`` (``"not installed"`` when absent)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), **{name: installed(name) for name in names}}


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # the vector / matrix units torch's CPU kernels use


def hardware(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """The machine a measurement ran on: CPU model and flags, CPUs usable by this process, GPUs.

    Self-contained (reads ``cpuinfo`` and asks torch), so it can move to another module as is. Keys:
    ``cpu_model``, ``cpu_flags`` (each of :data:`CPU_FLAGS` -> present), ``logical_cpus`` (the machine),
    ``usable_cpus`` (this process's affinity), ``torch_cpu_capability`` (the kernel set torch dispatches
    to, e.g. ``AVX512``), ``gpus`` (names, empty without CUDA) and ``cuda`` (torch's CUDA version or None).
    """
    import os
    import platform

    import torch

    model, flags = None, None
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = set(value.split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        capability = None
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cpu_flags": {flag: flag in (flags or set()) for flag in CPU_FLAGS},
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "torch_cpu_capability": capability,
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
    }
