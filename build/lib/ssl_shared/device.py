"""Device selection: CUDA when present, else CPU. Nothing in the library assumes a GPU."""

from __future__ import annotations

import torch


def get_device(name: str = "auto") -> torch.device:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` to a ``torch.device``.

    ``"auto"`` picks the first CUDA device when one is visible, else the CPU. Asking for CUDA on a
    machine without it raises ``ValueError`` instead of failing later inside a kernel.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"device must be a non-empty string, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device
