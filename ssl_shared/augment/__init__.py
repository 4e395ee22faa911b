"""Batched image augmentations with per-sample randomness (``ssl_shared.augment``).

Every op takes ``x`` of shape (B, C, H, W), uint8 or float, on any device, and returns the same dtype
on the same device. Random ops take ``generator`` (None, a generator on ``x.device``, or a CPU
generator: then parameters are drawn on the CPU, so one seed gives the same parameters on every device)
and ``return_params=True`` to also return a dict of the sampled parameters as tensors. Frame stacks
(C = 3k) get one geometric transform and one set of colour parameters per sample, shared by all frames.
Value range: uint8 is 0..255; floats are 0..1 unless ``max_value`` is passed to the ops that clamp.

Modules: ``crop`` (random/center crop, DrQ shift), ``resized_crop``, ``geometric`` (flip, rot90),
``color`` (grayscale, brightness/contrast/saturation/hue, solarize), ``jitter`` (colour jitter),
``filters`` (blur, Sobel), ``erasing`` (cutout, random erasing), ``noise``, ``random_conv``,
``compose`` (Compose, RandomApply), ``views`` (TwoViews).

:data:`RANDOM_OPS` is the registry of the ops with random parameters (name -> op): each takes ``(B, C, H, W)``
images first, its settings with defaults (only ``random_resized_crop`` needs its output ``size``), and
``generator=`` / ``return_params=``; the shared reproducibility and input tests run over it.
"""

from collections.abc import Callable
from typing import Any

from ssl_shared.augment.color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    hsv_to_rgb,
    random_grayscale,
    rgb_to_grayscale,
    rgb_to_hsv,
    solarize,
)
from ssl_shared.augment.compose import Compose, RandomApply
from ssl_shared.augment.crop import center_crop, crop_at, random_crop, random_shift, replicate_pad
from ssl_shared.augment.erasing import cutout, random_erasing
from ssl_shared.augment.filters import blur_with_sigma, gaussian_blur, gaussian_kernels, sobel
from ssl_shared.augment.geometric import horizontal_flip, rot90, rot90_by
from ssl_shared.augment.jitter import color_jitter
from ssl_shared.augment.noise import gaussian_noise
from ssl_shared.augment.random_conv import random_conv
from ssl_shared.augment.resized_crop import random_resized_crop, resized_crop
from ssl_shared.augment.views import TwoViews

#: Every op with random parameters, by its function name.
RANDOM_OPS: dict[str, Callable[..., Any]] = {
    op.__name__: op
    for op in (
        random_crop,
        random_shift,
        random_resized_crop,
        horizontal_flip,
        rot90,
        color_jitter,
        random_grayscale,
        cutout,
        random_erasing,
        gaussian_blur,
        gaussian_noise,
        random_conv,
    )
}

__all__ = [
    "RANDOM_OPS",
    "Compose",
    "RandomApply",
    "TwoViews",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur_with_sigma",
    "center_crop",
    "color_jitter",
    "crop_at",
    "cutout",
    "gaussian_blur",
    "gaussian_kernels",
    "gaussian_noise",
    "horizontal_flip",
    "hsv_to_rgb",
    "random_conv",
    "random_crop",
    "random_erasing",
    "random_grayscale",
    "random_resized_crop",
    "random_shift",
    "replicate_pad",
    "resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "rot90",
    "rot90_by",
    "sobel",
    "solarize",
]
