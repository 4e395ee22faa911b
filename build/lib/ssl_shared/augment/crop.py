"""Crops and shifts with integer offsets: random crop (CURL/RAD), center crop, random shift (DrQ).

A random crop and a random shift both cut one window per sample out of the (for the shift, padded)
image, so one helper does the work for both (and for :func:`crop_at`, its checked public form): it
views the batch as overlapping windows (``as_strided``) and gathers one window per sample with a
single ``index_select``. Each gathered window is a strided block whose rows are contiguous, so the copy
runs at memory speed on CPU and CUDA alike (no Python loop over samples, no numpy).

Frame stacks (C = 3k) share the window: all channels of a sample are cut at the same offsets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ssl_shared.augment._common import check_fits, check_images, check_size, randint

Params = dict[str, torch.Tensor]


def crop_at(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Cut ``x[i, :, top[i]:top[i]+h, left[i]:left[i]+w]`` for every sample ``i``.

    ``top`` and ``left`` are integer tensors of shape (B,) on any device; they must keep the window
    inside the image (ValueError otherwise). Returns a new contiguous (B, C, h, w) tensor.
    """
    b, c, height, width = check_images(x)
    h, w = check_size(size)
    check_fits(height, width, h, w)
    top = torch.as_tensor(top, device=x.device).long().reshape(-1)
    left = torch.as_tensor(left, device=x.device).long().reshape(-1)
    if top.numel() != b or left.numel() != b:
        raise ValueError(f"top and left need one offset per sample (B={b}), got {top.numel()} and {left.numel()}")
    bad = (top < 0) | (top > height - h) | (left < 0) | (left > width - w)
    if bool(bad.any()):
        raise ValueError(
            f"crop offsets must satisfy 0 <= top <= {height - h} and 0 <= left <= {width - w}, "
            f"got top={top[bad].tolist()} left={left[bad].tolist()}"
        )
    return _gather_windows(x, top, left, h, w)


def _gather_windows(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The unchecked core of :func:`crop_at`: one (C, h, w) window per sample, one index_select."""
    b, c, height, width = x.shape
    if b == 0:
        return x.new_empty((0, c, h, w))
    x = x.contiguous()
    sample_stride = c * height * width
    # windows[g] is the (C, h, w) block starting at flat element g of the batch; only starts that
    # keep the block inside the batch are exposed.
    last_start = b * sample_stride - ((c - 1) * height * width + (h - 1) * width + w)
    windows = x.as_strided((last_start + 1, c, h, w), (1, height * width, width, 1))
    starts = torch.arange(b, device=x.device) * sample_stride + top * width + left
    return windows.index_select(0, starts)


def random_crop(
    x: torch.Tensor,
    size: int | Sequence[int] = 84,
    *,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Random crop with independent offsets per sample (CURL, Srinivas et al. 2020; RAD, Laskin et al. 2020).

    Offsets are uniform over every valid position, ``top in 0..H-h`` and ``left in 0..W-w`` inclusive
    (for 100 -> 84 that is 0..16; the official CURL code draws 0..15 and never uses the last row/column).
    Params: ``{"top": (B,), "left": (B,)}`` int64.
    """
    b, _, height, width = check_images(x)
    h, w = check_size(size)
    check_fits(height, width, h, w)
    top = randint(0, height - h, (b,), x, generator)
    left = randint(0, width - w, (b,), x, generator)
    out = _gather_windows(x, top, left, h, w)
    return (out, {"top": top, "left": left}) if return_params else out


def center_crop(x: torch.Tensor, size: int | Sequence[int] = 84) -> torch.Tensor:
    """Central ``(h, w)`` window, offsets ``(H - h) // 2`` and ``(W - w) // 2`` (CURL's eval crop).

    Returns a view of ``x`` (no copy); call ``.contiguous()`` if a separate tensor is needed.
    """
    _, _, height, width = check_images(x)
    h, w = check_size(size)
    check_fits(height, width, h, w)
    top, left = (height - h) // 2, (width - w) // 2
    return x[:, :, top : top + h, left : left + w]


def random_shift(
    x: torch.Tensor,
    pad: int = 4,
    *,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """DrQ random shift (Kostrikov et al. 2020): replicate-pad by ``pad`` then random-crop back to H x W.

    Equal, pixel for pixel, to ``F.pad(x, (pad,) * 4, mode="replicate")`` followed by
    ``[..., top:top+H, left:left+W]``. Params: ``{"top": (B,), "left": (B,)}`` int64 offsets into the
    padded image, each in ``0..2*pad``; the image moves by ``pad - top`` rows and ``pad - left`` columns.
    """
    b, _, height, width = check_images(x)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got {pad!r}")
    top = randint(0, 2 * pad, (b,), x, generator)
    left = randint(0, 2 * pad, (b,), x, generator)
    out = _gather_windows(replicate_pad(x, pad), top, left, height, width)
    return (out, {"top": top, "left": left}) if return_params else out


def replicate_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad H and W by ``pad`` pixels that repeat the border, like ``F.pad(x, (pad,) * 4, "replicate")``.

    ``F.pad`` is used for floating images and on CPU; for integer images elsewhere (where some backends
    lack an integer replicate-pad kernel) the border is built with ``torch.cat`` of expanded edges.
    """
    if pad == 0:
        return x
    if x.dtype.is_floating_point or x.device.type == "cpu":
        return F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return replicate_pad_by_concat(x, pad)


def replicate_pad_by_concat(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Replicate padding from concatenated edge rows/columns; works for every dtype and device."""
    b, c, height, width = x.shape
    rows = torch.cat([x[:, :, :1].expand(b, c, pad, width), x, x[:, :, -1:].expand(b, c, pad, width)], dim=2)
    tall = height + 2 * pad
    return torch.cat([rows[..., :1].expand(b, c, tall, pad), rows, rows[..., -1:].expand(b, c, tall, pad)], dim=3)
