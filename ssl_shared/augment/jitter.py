"""Colour jitter: random brightness, contrast, saturation and hue, drawn per sample.

Factors (torchvision's ``ColorJitter`` convention): brightness, contrast and saturation factors are
uniform in ``[max(0, 1 - s), 1 + s]`` for a strength ``s`` (or in a given ``(lo, hi)``); the hue shift
is uniform in ``[-s, s]`` turns with ``s <= 0.5``. Each sample gets its own four factors, used on all
frames of a stack (see :mod:`ssl_shared.augment.color` for the formulas).

Order: with ``random_order=True`` (the default, as torchvision's ``ColorJitter`` draws a new order
for every image) each sample applies the four adjustments in its own random permutation; with
``random_order=False`` every sample uses brightness, contrast, saturation, hue. Each adjustment clamps
to the value range; uint8 input is processed in float32 and rounded once at the end (torchvision
truncates after every step, so uint8 results can differ from it by a few levels).

Blocks: all factors are drawn for the whole batch first; samples that share an order (at most 24
groups) are then adjusted together, in blocks of ``block_size`` samples, each block fully
vectorised. On the CPU the default block holds about ``CPU_BLOCK_BYTES`` of float32 pixels, so the
dozens of temporaries of the hue conversion stay in cache instead of streaming the whole batch
through memory each time (timings in ``benchmarks/results/augment_cpu_1thread.md``); on other devices
the default is the whole batch. The result does not depend on the block size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ssl_shared.augment._common import (
    check_frames,
    check_images,
    rand,
    restore_dtype,
    uniform,
    value_max,
)
from ssl_shared.augment.color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    as_frames,
)

Params = dict[str, torch.Tensor]
Adjust = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]

# Index of each adjustment in the "order" parameter.
OPS: tuple[tuple[str, Adjust, float], ...] = (
    ("brightness", adjust_brightness, 1.0),
    ("contrast", adjust_contrast, 1.0),
    ("saturation", adjust_saturation, 1.0),
    ("hue", adjust_hue, 0.0),
)


def factor_range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """Strength ``s`` -> ``(max(0, 1 - s), 1 + s)``; a ``(lo, hi)`` pair with ``0 <= lo <= hi`` is kept."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name} strength must be >= 0, got {value!r}")
        return max(0.0, 1.0 - float(value)), 1.0 + float(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and 0 <= value[0] <= value[1]:
        return float(value[0]), float(value[1])
    raise ValueError(f"{name} must be a strength >= 0 or a pair 0 <= lo <= hi, got {value!r}")


def hue_range(value: float | Sequence[float]) -> tuple[float, float]:
    """Hue strength ``s`` in [0, 0.5] -> ``(-s, s)``; a pair must lie in [-0.5, 0.5]."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 0 <= value <= 0.5:
            raise ValueError(f"hue strength must be in [0, 0.5], got {value!r}")
        return -float(value), float(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and -0.5 <= value[0] <= value[1] <= 0.5:
        return float(value[0]), float(value[1])
    raise ValueError(f"hue must be a strength in [0, 0.5] or a pair -0.5 <= lo <= hi <= 0.5, got {value!r}")


CPU_BLOCK_BYTES = 4 * 2**20


def _block_size(x: torch.Tensor, block_size: int | None) -> int:
    """Samples per block: ``block_size`` if given, else ~CPU_BLOCK_BYTES of float32 on CPU, else B."""
    if block_size is not None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int or None, got {block_size!r}")
        return block_size
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    sample_bytes = 4 * x[0].numel() if x.shape[0] > 0 else 1
    return max(1, CPU_BLOCK_BYTES // max(1, sample_bytes))


def _order_groups(order: torch.Tensor) -> list[tuple[torch.Tensor, list[int]]]:
    """Split the batch by permutation: ``[(sample indices, adjustment order), ...]`` (at most 24 groups)."""
    code = order[:, 0] * 64 + order[:, 1] * 16 + order[:, 2] * 4 + order[:, 3]
    groups = []
    for value in torch.unique(code).tolist():
        samples = torch.nonzero(code == value).squeeze(1)
        groups.append((samples, [(value >> shift) & 3 for shift in (6, 4, 2, 0)]))
    return groups


def color_jitter(
    x: torch.Tensor,
    brightness: float | Sequence[float] = 0.8,
    contrast: float | Sequence[float] = 0.8,
    saturation: float | Sequence[float] = 0.8,
    hue: float | Sequence[float] = 0.2,
    *,
    random_order: bool = True,
    channels_per_frame: int = 3,
    max_value: float | None = None,
    block_size: int | None = None,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Per-sample colour jitter; defaults are SimCLR's strength-1 jitter (Chen et al. 2020, App. A).

    ``block_size``: samples per vectorised block (None: see the module docstring); speed only.

    Params: ``{"brightness", "contrast", "saturation", "hue"}`` each (B,) float32, and ``"order"``
    (B, 4) int64, the adjustment indices (0 brightness, 1 contrast, 2 saturation, 3 hue) in the
    order applied.
    """
    b, _, _, _ = check_images(x)
    ranges = (
        factor_range(brightness, "brightness"),
        factor_range(contrast, "contrast"),
        factor_range(saturation, "saturation"),
        hue_range(hue),
    )
    top = value_max(x, max_value)
    check_frames(x.shape[1], channels_per_frame)
    block = _block_size(x, block_size)
    factors = [uniform(lo, hi, (b,), x, generator) for lo, hi in ranges]
    if random_order:
        order = torch.argsort(rand((b, len(OPS)), x, generator), dim=1)
    else:
        order = torch.arange(len(OPS), device=x.device).expand(b, len(OPS))
    active = [lo != identity or hi != identity for (lo, hi), (_, _, identity) in zip(ranges, OPS)]
    work_dtype = torch.float32 if x.dtype == torch.uint8 else x.dtype
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    if random_order:
        groups = _order_groups(order)
    else:
        groups = [(torch.arange(b, device=x.device), list(range(len(OPS))))]
    # Samples that share a permutation are adjusted together, a block of samples at a time.
    for samples, sequence in groups:
        for rows in samples.split(block):
            # index_select makes a private copy, so the adjustments never touch the caller's tensor.
            frames = as_frames(x.index_select(0, rows).to(work_dtype), channels_per_frame)
            for index in sequence:
                if active[index]:
                    frames = OPS[index][1](frames, factors[index].index_select(0, rows), top)
            out.index_copy_(0, rows, restore_dtype(frames.reshape(-1, *x.shape[1:]), x.dtype))
    if not return_params:
        return out
    params = {name: factor for (name, _, _), factor in zip(OPS, factors)}
    params["order"] = order.contiguous()
    return out, params
