"""The augmented views of the contrastive and distillation methods, built from ``ssl_shared.augment``.

SimCLR's family of augmentations (Chen et al. 2020, App. A), applied per sample:

    random resized crop (area scale in ``crop_scale``, resized back to H x W)
    -> horizontal flip (p = 0.5)
    -> colour jitter of strength s (brightness/contrast/saturation 0.8 s, hue 0.2 s) with p = 0.8;
       other per-component strengths through ``jitter_scales`` (BYOL: 0.4, 0.4, 0.2, 0.1 at s = 1)
    -> grayscale with p = 0.2
    -> Gaussian blur (kernel ~10% of the image, sigma in [0.1, 2]) with ``blur_probability``

Colour ops need RGB frames (C a multiple of 3); for other channel counts they are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from ssl_shared.augment import (
    Compose,
    RandomApply,
    color_jitter,
    gaussian_blur,
    horizontal_flip,
    random_grayscale,
    random_resized_crop,
)


@dataclass
class ViewConfig:
    # Chen et al. 2020 (SimCLR), App. A and B.9: CIFAR-10 setting (jitter strength 0.5, no blur);
    # ImageNet uses strength 1.0 and blur with p = 0.5.
    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip_probability: float = 0.5
    jitter_strength: float = 0.5
    # Brightness, contrast, saturation and hue strengths per unit of jitter_strength (SimCLR, App. A).
    jitter_scales: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2)
    jitter_probability: float = 0.8
    grayscale_probability: float = 0.2
    blur_probability: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.jitter_strength < 0:
            raise ValueError(f"jitter_strength must be >= 0, got {self.jitter_strength}")
        if len(self.jitter_scales) != 4 or min(self.jitter_scales) < 0:
            raise ValueError(f"jitter_scales must be 4 values >= 0, got {self.jitter_scales}")
        if self.jitter_scales[3] * self.jitter_strength > 0.5:
            raise ValueError(
                f"hue strength jitter_scales[3] * jitter_strength must be <= 0.5, got "
                f"{self.jitter_scales[3]} * {self.jitter_strength}"
            )


def view_pipeline(config: ViewConfig, height: int, width: int, channels: int) -> Compose:
    """The composed augmentation for images of ``(channels, height, width)``."""
    ops = [partial(random_resized_crop, size=(height, width), scale=config.crop_scale)]
    if config.flip_probability > 0:
        ops.append(partial(horizontal_flip, p=config.flip_probability))
    if channels % 3 == 0:
        s = config.jitter_strength
        if s > 0 and config.jitter_probability > 0:
            brightness, contrast, saturation, hue = (scale * s for scale in config.jitter_scales)
            jitter = partial(color_jitter, brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
            ops.append(RandomApply(jitter, p=config.jitter_probability))
        if config.grayscale_probability > 0:
            ops.append(partial(random_grayscale, p=config.grayscale_probability))
    if config.blur_probability > 0:
        kernel = max(3, (min(height, width) // 10) | 1)
        ops.append(RandomApply(partial(gaussian_blur, kernel_size=kernel), p=config.blur_probability))
    return Compose(ops)


def augment_view(x: Tensor, config: ViewConfig, generator: torch.Generator | None = None) -> Tensor:
    """One random view of every image in ``x`` (float ``(B, C, H, W)`` in ``[0, 1]``)."""
    _, c, h, w = x.shape
    return view_pipeline(config, h, w, c)(x, generator=generator)
