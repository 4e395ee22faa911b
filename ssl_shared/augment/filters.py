"""Spatial filters: Gaussian blur with a per-sample sigma, and the Sobel edge magnitude.

Both run in float32 for uint8 input and return the input dtype (rounded for uint8). Filters are
applied per channel, so every frame of a stack is filtered with the same kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ssl_shared.augment._common import (
    check_images,
    check_interval,
    per_sample,
    restore_dtype,
    to_float,
    uniform,
    value_max,
)
from ssl_shared.augment.color import as_frames, luma

Params = dict[str, torch.Tensor]


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian taps, one row per sample: (B, K), ``k[t] ~ exp(-t^2 / (2 sigma^2))``.

    Taps are at ``t = -(K - 1) / 2 .. (K - 1) / 2``.
    """
    radius = (kernel_size - 1) / 2
    taps = torch.arange(kernel_size, device=sigma.device, dtype=sigma.dtype) - radius
    weights = torch.exp(-(taps.unsqueeze(0) ** 2) / (2.0 * sigma.unsqueeze(1) ** 2))
    return weights / weights.sum(dim=1, keepdim=True)


def blur_with_sigma(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur of sample ``i`` with ``sigma[i]`` (reflect padding, like torchvision)."""
    _, _, height, width = check_images(x)
    radius = kernel_size // 2
    if radius >= min(height, width):
        raise ValueError(f"kernel_size={kernel_size} needs images larger than {radius} px, got ({height}, {width})")
    work = to_float(x)
    kernel = gaussian_kernels(sigma.to(work.dtype), kernel_size)  # (B, K)
    padded = F.pad(work, (radius, radius, radius, radius), mode="reflect")
    rows = torch.zeros_like(padded[:, :, :height, :])
    for t in range(kernel_size):
        rows += per_sample(kernel[:, t], 4) * padded[:, :, t : t + height, :]
    out = torch.zeros_like(rows[:, :, :, :width])
    for t in range(kernel_size):
        out += per_sample(kernel[:, t], 4) * rows[:, :, :, t : t + width]
    return restore_dtype(out, x.dtype)


def gaussian_blur(
    x: torch.Tensor,
    kernel_size: int = 9,
    sigma: float | Sequence[float] = (0.1, 2.0),
    *,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Gaussian blur, sigma uniform in ``sigma`` per sample (SimCLR: sigma in [0.1, 2.0], kernel ~10% of
    the image side; Chen et al. 2020). ``kernel_size`` is odd. Params: ``{"sigma": (B,)}``.
    """
    b, _, _, _ = check_images(x)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
    pair = (sigma, sigma) if isinstance(sigma, (int, float)) and not isinstance(sigma, bool) else sigma
    lo, hi = check_interval(pair, "sigma", low=0.0)
    if lo <= 0.0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    sigmas = uniform(lo, hi, (b,), x, generator)
    out = blur_with_sigma(x, sigmas, kernel_size)
    return (out, {"sigma": sigmas}) if return_params else out


SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def sobel(x: torch.Tensor, *, channels_per_frame: int = 3, max_value: float | None = None) -> torch.Tensor:
    """Sobel edge magnitude of each frame's grayscale, written to all channels of that frame.

    ``G = sqrt(Gx^2 + Gy^2) / 4`` with the 3x3 kernels ``[1, 2, 1]^T [-1, 0, 1]`` and its transpose on
    the luma ``Y`` of each frame (replicate padding, so flat borders give 0); the division by 4 makes a
    step of height ``d`` give ``G = d`` next to the step. Clamped to ``[0, m]``; output keeps the shape
    (B, C, H, W) and dtype, so stacks of k frames give k edge maps, each repeated over its frame's
    channels.
    """
    top = value_max(x, max_value)
    frames = as_frames(to_float(x), channels_per_frame)
    b, k, c, height, width = frames.shape
    gray = luma(frames).reshape(b * k, 1, height, width)
    kx = torch.tensor(SOBEL_X, dtype=gray.dtype, device=x.device)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    grads = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
    magnitude = grads.pow(2).sum(dim=1, keepdim=True).sqrt() / 4.0
    out = magnitude.clamp(0.0, top).reshape(b, k, 1, height, width).expand(b, k, c, height, width)
    return restore_dtype(out.reshape(x.shape), x.dtype)
