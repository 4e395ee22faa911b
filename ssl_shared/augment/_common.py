"""Shared helpers for the augmentations: input checks, random draws, value ranges.

Random numbers. Every op takes ``generator: torch.Generator | None``.

* ``None``: the default generator of ``x.device`` is used (``torch.manual_seed`` seeds it).
* a generator on ``x.device``: numbers are drawn there.
* a CPU generator while ``x`` is on an accelerator: numbers are drawn on the CPU and moved to
  ``x.device``; the same seed then gives the same parameters on CPU and on CUDA.

A generator on another accelerator than ``x`` is rejected with ``ValueError``. All draws are batched
(one call per parameter for the whole batch), so the stream a seed produces does not depend on the
device the images live on when a CPU generator is used.

Value range. uint8 images live in ``[0, 255]``; floating images in ``[0, 1]`` unless the caller passes
``max_value`` (e.g. ``max_value=255.0`` for float images holding 0..255 pixel values, as the CURL
pixel encoder expects). Ops that clamp, threshold or add noise use this range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

UINT8_MAX = 255.0


def check_images(x: torch.Tensor) -> tuple[int, int, int, int]:
    """Validate an image batch and return ``(B, C, H, W)``.

    Raises ValueError unless ``x`` is a 4-D tensor of dtype uint8 or a floating dtype.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W) (rank 4), got rank {x.dim()} shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.dtype.is_floating_point:
        raise ValueError(f"x must be uint8 or floating point, got dtype {x.dtype}")
    b, c, h, w = x.shape
    return int(b), int(c), int(h), int(w)


def check_probability(p: float, name: str = "p") -> float:
    """Return ``p`` as a float, raising ValueError unless ``0 <= p <= 1``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def check_interval(value: object, name: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, float]:
    """Return ``value`` as a ``(lo, hi)`` pair with ``low <= lo <= hi <= high``, else ValueError (any other
    value, a bool or a single number included, is refused)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (lo, hi), got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not low <= lo <= hi <= high:
        raise ValueError(f"{name} must satisfy {low} <= lo <= hi <= {high}, got {value!r}")
    return lo, hi


def check_size(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    """Normalise an output size (int or (h, w)) to a pair of positive ints, else ValueError."""
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {size!r}")
    return int(pair[0]), int(pair[1])


def check_fits(height: int, width: int, h: int, w: int, name: str = "size") -> None:
    """Raise ValueError if an ``(h, w)`` window does not fit in a ``height x width`` image."""
    if h > height or w > width:
        raise ValueError(f"{name}=({h}, {w}) is larger than the image ({height}, {width})")


def check_frames(channels: int, channels_per_frame: int) -> int:
    """Return the number of frames ``C // channels_per_frame`` after validating the split.

    ``channels_per_frame`` is 3 for stacks of RGB frames (C = 3k) and 1 for stacks of grayscale frames.
    """
    if channels_per_frame not in (1, 3):
        raise ValueError(f"channels_per_frame must be 1 (grayscale) or 3 (RGB), got {channels_per_frame!r}")
    if channels % channels_per_frame != 0:
        raise ValueError(
            f"C={channels} channels cannot be split into frames of channels_per_frame={channels_per_frame}"
        )
    return channels // channels_per_frame


def value_max(x: torch.Tensor, max_value: float | None) -> float:
    """The top of the value range: ``max_value`` if given, else 255 for uint8 and 1.0 for floats."""
    if max_value is None:
        return UINT8_MAX if x.dtype == torch.uint8 else 1.0
    if isinstance(max_value, bool) or not isinstance(max_value, (int, float)) or max_value <= 0:
        raise ValueError(f"max_value must be a positive number, got {max_value!r}")
    if x.dtype == torch.uint8 and float(max_value) != UINT8_MAX:
        raise ValueError(f"uint8 images have max_value 255, got max_value={max_value!r}")
    return float(max_value)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 (same values); floating tensors are returned unchanged."""
    return x.float() if x.dtype == torch.uint8 else x


def restore_dtype(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast a float result back to ``dtype``; uint8 results are clamped to 0..255 and rounded half up."""
    if dtype == torch.uint8:
        return (y + 0.5).clamp_(0.0, UINT8_MAX).to(torch.uint8)
    return y.to(dtype)


def _draw_device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    """The device random numbers are drawn on (see the module docstring)."""
    if generator is None:
        return x.device
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    gen_device = generator.device
    same_device = gen_device.type == x.device.type and (gen_device.index or 0) == (x.device.index or 0)
    if gen_device.type == "cpu" or same_device:
        return gen_device
    raise ValueError(f"generator on {gen_device} cannot draw for images on {x.device}; use a CPU generator")


def rand(shape: Sequence[int], x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) float32 numbers of ``shape`` on ``x.device``."""
    out = torch.rand(tuple(shape), generator=generator, device=_draw_device(x, generator))
    return out.to(x.device)


def randn(shape: Sequence[int], x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal float32 numbers of ``shape`` on ``x.device``."""
    out = torch.randn(tuple(shape), generator=generator, device=_draw_device(x, generator))
    return out.to(x.device)


def randint(
    low: int, high: int, shape: Sequence[int], x: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Integers uniform in ``low..high`` (both inclusive), int64, on ``x.device``."""
    out = torch.randint(low, high + 1, tuple(shape), generator=generator, device=_draw_device(x, generator))
    return out.to(x.device)


def uniform(
    lo: float, hi: float, shape: Sequence[int], x: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Uniform numbers in ``[lo, hi)`` of ``shape`` on ``x.device``."""
    return lo + (hi - lo) * rand(shape, x, generator)


def bernoulli(p: float, batch: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A (B,) bool mask, True with probability ``p`` per sample."""
    return rand((batch,), x, generator) < p


def per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape (B,) values to (B, 1, ..., 1) with ``ndim`` dims for broadcasting."""
    return values.reshape(values.shape[0], *([1] * (ndim - 1)))
