"""Random convolution (Lee et al. 2020, "Network Randomization", ICLR).

One freshly drawn conv layer per call (per batch): weights ``W ~ N(0, 2 / (fan_in + fan_out))``
(Xavier normal), no bias, ``kernel_size x kernel_size`` with zero "same" padding, mapping each frame's
``channels_per_frame`` channels to as many channels. The same layer filters every frame of every
sample. The output is clamped to the value range ``[0, m]`` and keeps the input dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ssl_shared.augment._common import check_frames, check_images, randn, restore_dtype, to_float, value_max

Params = dict[str, torch.Tensor]


def random_conv(
    x: torch.Tensor,
    kernel_size: int = 3,
    *,
    channels_per_frame: int = 3,
    max_value: float | None = None,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Filter the batch with one random conv layer. Params: ``{"weight": (c, c, K, K)}``."""
    b, channels, height, width = check_images(x)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
    frames = check_frames(channels, channels_per_frame)
    top = value_max(x, max_value)
    fan = channels_per_frame * kernel_size * kernel_size
    std = math.sqrt(2.0 / (fan + fan))
    weight = randn((channels_per_frame, channels_per_frame, kernel_size, kernel_size), x, generator) * std
    work = to_float(x).reshape(b * frames, channels_per_frame, height, width)
    out = F.conv2d(work, weight.to(work.dtype), padding=kernel_size // 2).clamp_(0.0, top)
    out = restore_dtype(out.reshape(x.shape), x.dtype)
    return (out, {"weight": weight}) if return_params else out
