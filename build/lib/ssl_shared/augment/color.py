"""Colour adjustments with one parameter per sample, applied identically to every frame of a stack.

A batch ``(B, C, H, W)`` is viewed as frames ``(B, k, channels_per_frame, H, W)``: RGB frames when
``channels_per_frame=3`` (C = 3k, the default), grayscale frames when it is 1 (then saturation and hue
are the identity and the grayscale of a frame is the frame itself). Each function takes one factor per
sample, shape (B,), and uses it on all k frames of that sample; statistics (the contrast mean) are per
frame, so the result equals applying the op to each frame on its own with the sample's factor.

Formulas (as in torchvision's functional ops), with ``m`` the top of the value range (255 for uint8,
1.0 for float unless ``max_value`` is given) and every result clamped to ``[0, m]``:

* grayscale ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601 luma)
* brightness ``f * x``
* contrast ``f * x + (1 - f) * mean(Y)`` (mean over the frame's pixels)
* saturation ``f * x + (1 - f) * Y``
* hue: rotate the HSV hue by ``f`` turns (``f`` in [-0.5, 0.5])
* solarize: ``m - x`` where ``x >= threshold * m``

The ``adjust_*`` functions work on float frames ``(B, k, c, H, W)`` (values in ``[0, m]``);
``rgb_to_grayscale``, ``random_grayscale`` and ``solarize`` take image batches.
"""

from __future__ import annotations

import torch

from ssl_shared.augment._common import (
    bernoulli,
    check_frames,
    check_images,
    check_probability,
    per_sample,
    restore_dtype,
    to_float,
    value_max,
)

Params = dict[str, torch.Tensor]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def as_frames(x: torch.Tensor, channels_per_frame: int) -> torch.Tensor:
    """View (B, C, H, W) as (B, C // channels_per_frame, channels_per_frame, H, W) after validation."""
    b, c, h, w = check_images(x)
    frames = check_frames(c, channels_per_frame)
    return x.reshape(b, frames, channels_per_frame, h, w)


def luma(frames: torch.Tensor) -> torch.Tensor:
    """Grayscale (B, k, 1, H, W) of float frames (B, k, c, H, W); a 1-channel frame is its own gray."""
    if frames.shape[2] == 1:
        return frames
    r, g, b = frames.unbind(dim=2)
    return torch.mul(r, LUMA_WEIGHTS[0]).add_(g, alpha=LUMA_WEIGHTS[1]).add_(b, alpha=LUMA_WEIGHTS[2]).unsqueeze(2)


def adjust_brightness(frames: torch.Tensor, factor: torch.Tensor, max_value: float) -> torch.Tensor:
    """``clamp(f * x, 0, m)`` with one factor per sample."""
    return torch.mul(frames, per_sample(factor, 5)).clamp_(0.0, max_value)


def adjust_contrast(frames: torch.Tensor, factor: torch.Tensor, max_value: float) -> torch.Tensor:
    """``clamp(f * x + (1 - f) * mean(Y), 0, m)``, the mean taken over each frame's gray pixels."""
    f = per_sample(factor, 5)
    mean = luma(frames).mean(dim=(2, 3, 4), keepdim=True)
    return torch.addcmul((1.0 - f) * mean, frames, f).clamp_(0.0, max_value)


def adjust_saturation(frames: torch.Tensor, factor: torch.Tensor, max_value: float) -> torch.Tensor:
    """``clamp(f * x + (1 - f) * Y, 0, m)``: 0 gives grayscale, 1 the identity."""
    f = per_sample(factor, 5)
    if frames.shape[2] == 1:
        return frames.clamp(0.0, max_value)
    return torch.addcmul(luma(frames).mul_(1.0 - f), frames, f).clamp_(0.0, max_value)


def adjust_hue(frames: torch.Tensor, factor: torch.Tensor, max_value: float) -> torch.Tensor:
    """Rotate the hue of RGB frames by ``factor`` turns (per sample); grayscale frames are unchanged.

    Works in the hexagonal HSV model without forming S and V: with ``M = max``, ``C = max - min`` and
    ``h6`` the hue in sixths of a turn, channel ``n`` is ``M - C * clamp(||h6 - c_n| - 3| - 1, 0, 1)``
    with ``c = (3, 5, 1)`` for (R, G, B) and ``h6`` taken in [0, 6) after the shift; this is the usual
    ``hsv -> rgb`` formula written with a circular distance. Each output lies between the pixel's
    smallest and largest channel, so no clamp is needed (and ``max_value`` is unused: hue is scale-free).
    """
    if frames.shape[2] == 1:
        return frames
    hue6, maxc, chroma = _hexcone(frames)
    hue6 = torch.remainder(hue6.add_(6.0 * per_sample(factor, 4)), 6.0)
    out = torch.empty_like(frames)
    weight = torch.empty_like(hue6)
    for channel, centre in enumerate((3.0, 5.0, 1.0)):
        torch.sub(hue6, centre, out=weight)
        weight.abs_().sub_(3.0).abs_().sub_(1.0).clamp_(0.0, 1.0).mul_(chroma)
        torch.sub(maxc, weight, out=out[:, :, channel])
    return out


def _hexcone(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in sixths of a turn (in [-1, 5]), max and chroma of RGB frames; all (B, k, H, W).

    Written with in-place ops and ``out=`` to keep the number of full-size temporaries low.
    """
    r, g, b = frames.unbind(dim=2)
    maxc = torch.maximum(r, g)
    torch.maximum(maxc, b, out=maxc)
    chroma = torch.minimum(r, g)
    torch.minimum(chroma, b, out=chroma)
    torch.sub(maxc, chroma, out=chroma)
    # Grey pixels (chroma 0) have zero numerators, so any finite 1 / chroma gives them hue 0.
    inv_chroma = chroma.clamp_min(torch.finfo(chroma.dtype).tiny).reciprocal_()
    # The maximal channel picks the sector (r wins ties, then g): h6 = (g-b)/C, (b-r)/C + 2, (r-g)/C + 4.
    hue6 = torch.where(maxc == g, torch.sub(b, r).add_(chroma, alpha=2.0), torch.sub(r, g).add_(chroma, alpha=4.0))
    hue6 = torch.where(maxc == r, torch.sub(g, b), hue6).mul_(inv_chroma)
    return hue6, maxc, chroma


def rgb_to_hsv(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, k, 3, H, W) RGB in [0, 1] -> hue, saturation, value, each (B, k, H, W) in [0, 1]."""
    hue6, maxc, chroma = _hexcone(frames)
    sat = torch.where(maxc > 0, chroma / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.remainder(hue6, 6.0) / 6.0, sat, maxc


def hsv_to_rgb(hue: torch.Tensor, sat: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`: (B, k, H, W) each -> (B, k, 3, H, W).

    Channel n in (R, G, B) = ``v - v s clamp(min(t, 4 - t), 0, 1)`` with ``t = (n0 + 6 h) mod 6`` and
    ``n0 = 5, 3, 1``.
    """
    channels = []
    for n0 in (5.0, 3.0, 1.0):
        t = torch.remainder(n0 + 6.0 * hue, 6.0)
        channels.append(val - val * sat * torch.minimum(t, 4.0 - t).clamp(0.0, 1.0))
    return torch.stack(channels, dim=2)


def rgb_to_grayscale(x: torch.Tensor, *, channels_per_frame: int = 3) -> torch.Tensor:
    """Replace every RGB frame by its luma ``Y`` in all three channels; shape and dtype are kept."""
    frames = as_frames(x, channels_per_frame)
    gray = luma(to_float(frames)).expand_as(frames)
    return restore_dtype(gray, x.dtype).reshape(x.shape)


def random_grayscale(
    x: torch.Tensor,
    p: float = 0.2,
    *,
    channels_per_frame: int = 3,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Grayscale each sample (all its frames) with probability ``p`` (SimCLR uses 0.2).

    Params: ``{"gray": (B,) bool}``.
    """
    b, _, _, _ = check_images(x)
    p = check_probability(p)
    gray = rgb_to_grayscale(x, channels_per_frame=channels_per_frame)
    mask = bernoulli(p, b, x, generator)
    out = torch.where(per_sample(mask, 4), gray, x)
    return (out, {"gray": mask}) if return_params else out


def solarize(x: torch.Tensor, threshold: float = 0.5, *, max_value: float | None = None) -> torch.Tensor:
    """Invert pixels at or above ``threshold * m``: ``m - x`` there, ``x`` elsewhere (BYOL's solarize).

    ``threshold`` is a fraction of the value range in [0, 1]; for uint8 the default inverts x >= 128.
    Wrap in :class:`RandomApply` to solarize only some samples.
    """
    check_images(x)
    top = value_max(x, max_value)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a fraction of the value range in [0, 1], got {threshold!r}")
    inverted = (255 - x) if x.dtype == torch.uint8 else (top - x)
    return torch.where(x >= threshold * top, inverted, x)
