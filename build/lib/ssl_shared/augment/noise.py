"""Additive Gaussian pixel noise with a per-sample standard deviation."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssl_shared.augment._common import (
    check_images,
    check_interval,
    per_sample,
    randn,
    restore_dtype,
    to_float,
    uniform,
    value_max,
)

Params = dict[str, torch.Tensor]


def gaussian_noise(
    x: torch.Tensor,
    std: float | Sequence[float] = (0.0, 0.1),
    *,
    max_value: float | None = None,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """``clamp(x + s * m * n, 0, m)`` with ``n ~ N(0, 1)`` per pixel and ``s`` per sample.

    ``std`` is a fraction of the value range ``m``: a number (the same for every sample) or a pair, from
    which each sample draws ``s`` uniformly. Noise is independent across channels and frames.
    Params: ``{"std": (B,)}`` (fractions of ``m``).
    """
    b, _, _, _ = check_images(x)
    top = value_max(x, max_value)
    pair = (std, std) if isinstance(std, (int, float)) and not isinstance(std, bool) else std
    lo, hi = check_interval(pair, "std", low=0.0)
    stds = uniform(lo, hi, (b,), x, generator)
    work = to_float(x)
    noise = randn(work.shape, x, generator).to(work.dtype)
    out = restore_dtype((work + per_sample(stds, 4).to(work.dtype) * top * noise).clamp_(0.0, top), x.dtype)
    return (out, {"std": stds}) if return_params else out
