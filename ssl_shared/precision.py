"""Numeric precision of the training steps: fp32, or bf16 autocast where the hardware accelerates it.

``precision="auto"`` resolves to ``"bf16"`` only where bf16 matrix products are faster than fp32:
CUDA devices that support bf16, and CPUs with bf16 matrix instructions (AMX ``amx_bf16`` or
``avx512_bf16``) that torch may use. On other CPUs (AVX2 only), or where torch is kept below those
instructions (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``: how an AVX2-only machine is
emulated), bf16 is emulated and slower, so ``auto`` stays ``"fp32"``.
bf16 runs keep fp32 master weights and optimizer states (``torch.autocast`` only lowers the matrix
products and convolutions), and losses are computed in fp32. The resolved value is what a run records.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal, get_args

import torch

from ssl_shared.errors import UserError

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: What ``"auto"`` resolves to, the precisions a run records and a model trains in.
RESOLVED_PRECISIONS: tuple[str, ...] = tuple(p for p in PRECISIONS if p != "auto")

#: CPU flags (``/proc/cpuinfo``) of bf16 matrix instructions.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: ``ONEDNN_MAX_CPU_ISA`` values that keep oneDNN (torch's CPU convolutions and matrix products) below them.
ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_has_fast_bf16(
    flags: set[str] | None = None, torch_capability: str | None = None, onednn_max_isa: str | None = None
) -> bool:
    """True when the CPU has bf16 matrix instructions (AMX or AVX-512 BF16) and torch may use them: its
    kernels run at the AVX-512 level and oneDNN is not capped below bf16. Unset arguments are read from
    this machine (``/proc/cpuinfo``, ``torch.backends.cpu.get_cpu_capability()``, ``ONEDNN_MAX_CPU_ISA``)."""
    if flags is None or torch_capability is None or onednn_max_isa is None:
        from ssl_shared.provenance import cpu_info

        info = cpu_info()
        flags = set(info["flags"]) if flags is None else flags
        torch_capability = (info["torch_cpu_capability"] or "") if torch_capability is None else torch_capability
        onednn_max_isa = (info["onednn_max_cpu_isa"] or "") if onednn_max_isa is None else onednn_max_isa
    if not torch_capability.upper().startswith("AVX512"):
        return False
    if onednn_max_isa and onednn_max_isa.upper() in ONEDNN_ISAS_WITHOUT_BF16:
        return False
    return any(f in flags for f in BF16_CPU_FLAGS)


def resolve_precision(
    precision: str,
    device: torch.device | str,
    cpu_flags: set[str] | None = None,
    torch_capability: str | None = None,
    onednn_max_isa: str | None = None,
) -> str:
    """``"auto"`` -> ``"bf16"`` where the device accelerates bf16, else ``"fp32"``; explicit values pass through.
    The CPU arguments default to this machine's (see :func:`cpu_has_fast_bf16`)."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision: unknown value {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16(cpu_flags, torch_capability, onednn_max_isa) else "fp32"
    return "fp32"


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """``torch.autocast`` to bf16 for a resolved ``"bf16"``; a no-op context for ``"fp32"``."""
    if precision == "fp32":
        return nullcontext()
    if precision != "bf16":
        raise ValueError(f"autocast takes a resolved precision ('fp32' or 'bf16'), got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
