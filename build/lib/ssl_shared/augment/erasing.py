"""Occlusion: cutout (DeVries & Taylor 2017) and random erasing (Zhong et al. 2020), per sample.

Each sample gets one axis-aligned box, built as a (B, 1, H, W) mask from per-sample bounds, so the box
is the same on every frame of a stack and there is no loop over samples. Boxed pixels are set to
``fill`` (in image units: 0..255 for uint8, 0..1 for floats unless the caller uses another range).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ssl_shared.augment._common import (
    bernoulli,
    check_images,
    check_interval,
    check_probability,
    rand,
    randint,
)

Params = dict[str, torch.Tensor]


def box_mask(
    top: torch.Tensor, left: torch.Tensor, height: torch.Tensor, width: torch.Tensor, img_h: int, img_w: int
) -> torch.Tensor:
    """(B, 1, H, W) bool mask, True inside rows ``top..top+height-1`` and columns ``left..left+width-1``.

    Bounds may extend past the image; the box is clipped.
    """
    rows = torch.arange(img_h, device=top.device).view(1, 1, img_h, 1)
    cols = torch.arange(img_w, device=top.device).view(1, 1, 1, img_w)
    t, l = top.view(-1, 1, 1, 1), left.view(-1, 1, 1, 1)
    inside_rows = (rows >= t) & (rows < t + height.view(-1, 1, 1, 1))
    inside_cols = (cols >= l) & (cols < l + width.view(-1, 1, 1, 1))
    return inside_rows & inside_cols


def _fill_value(x: torch.Tensor, fill: float) -> torch.Tensor:
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise ValueError(f"fill must be a number, got {fill!r}")
    if x.dtype == torch.uint8 and not (0 <= fill <= 255 and float(fill).is_integer()):
        raise ValueError(f"fill for uint8 images must be an integer in 0..255, got {fill!r}")
    return torch.tensor(fill, dtype=x.dtype, device=x.device)


def cutout(
    x: torch.Tensor,
    size: int = 16,
    *,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Fill a ``size x size`` square centred on a uniformly drawn pixel (may be clipped at the border).

    Params: ``{"top": (B,), "left": (B,)}`` int64, the unclipped top-left corner
    (``centre - size // 2``; may be negative).
    """
    b, _, img_h, img_w = check_images(x)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    value = _fill_value(x, fill)
    top = randint(0, img_h - 1, (b,), x, generator) - size // 2
    left = randint(0, img_w - 1, (b,), x, generator) - size // 2
    side = torch.full((b,), size, dtype=torch.long, device=x.device)
    out = torch.where(box_mask(top, left, side, side, img_h, img_w), value, x)
    return (out, {"top": top, "left": left}) if return_params else out


def random_erasing(
    x: torch.Tensor,
    p: float = 0.5,
    scale: Sequence[float] = (0.02, 0.33),
    ratio: Sequence[float] = (0.3, 3.3),
    *,
    fill: float = 0.0,
    attempts: int = 10,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Random erasing (Zhong et al. 2020; torchvision's ``RandomErasing`` defaults).

    With probability ``p`` a sample gets a box of area ``U(scale) * H * W`` and aspect ratio
    ``exp(U(log ratio))`` (height/width), at a uniform position; the first of ``attempts`` draws with
    ``h < H`` and ``w < W`` is used, and if none fits the sample is left as is.
    Params: ``{"top", "left", "height", "width"}`` (B,) int64 and ``"erased"`` (B,) bool.
    """
    b, _, img_h, img_w = check_images(x)
    p = check_probability(p)
    lo_s, hi_s = check_interval(scale, "scale", low=0.0, high=1.0)
    lo_r, hi_r = check_interval(ratio, "ratio", low=0.0)
    if lo_r <= 0.0:
        raise ValueError(f"ratio must be > 0, got {ratio!r}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a positive int, got {attempts!r}")
    value = _fill_value(x, fill)
    apply = bernoulli(p, b, x, generator)
    draws = rand((4, b, attempts), x, generator)
    area = img_h * img_w * (lo_s + (hi_s - lo_s) * draws[0])
    aspect = torch.exp(math.log(lo_r) + (math.log(hi_r) - math.log(lo_r)) * draws[1])
    h = torch.round(torch.sqrt(area * aspect))
    w = torch.round(torch.sqrt(area / aspect))
    fits = (h < img_h) & (w < img_w) & (h > 0) & (w > 0)
    first = torch.argmax(fits.to(torch.int8), dim=1, keepdim=True)
    h_pick = h.gather(1, first).squeeze(1)
    w_pick = w.gather(1, first).squeeze(1)
    top = torch.floor(draws[2].gather(1, first).squeeze(1) * (img_h - h_pick + 1)).long()
    left = torch.floor(draws[3].gather(1, first).squeeze(1) * (img_w - w_pick + 1)).long()
    erased = apply & fits.any(dim=1)
    height = torch.where(erased, h_pick.long(), torch.zeros_like(top))
    width = torch.where(erased, w_pick.long(), torch.zeros_like(top))
    out = torch.where(box_mask(top, left, height, width, img_h, img_w), value, x)
    if not return_params:
        return out
    return out, {"top": top, "left": left, "height": height, "width": width, "erased": erased}
