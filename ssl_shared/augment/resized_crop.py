"""Random resized crop (Inception-style; Szegedy et al. 2015, the SimCLR/BYOL crop), batched.

Box sampling follows torchvision's ``RandomResizedCrop``: for each sample, up to ``attempts`` boxes
with area ``U(scale) * H * W`` and aspect ratio ``exp(U(log ratio))``; the first box that fits is kept,
and a sample with no fitting box falls back to the largest central box whose ratio is clamped to
``ratio``. All attempts of all samples are drawn in one batched call.

Resampling: one ``affine_grid`` + ``grid_sample`` (bilinear, ``align_corners=False``, border
padding) maps the output grid onto each sample's box, i.e. output pixel centres sit at
``left + (j + 0.5) * width / out_w - 0.5`` in input pixel coordinates. Unlike torchvision there is no
antialiasing when shrinking. uint8 input is resampled in float32 and rounded back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ssl_shared.augment._common import (
    check_images,
    check_interval,
    check_size,
    rand,
    restore_dtype,
    to_float,
)

Params = dict[str, torch.Tensor]


def resized_crop(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    height: torch.Tensor,
    width: torch.Tensor,
    size: int | Sequence[int],
) -> torch.Tensor:
    """Resample box ``(top, left, height, width)`` of each sample to ``size`` (bilinear).

    Box values are per-sample (B,) tensors in pixels (integers or not). A box whose size equals
    ``size`` and whose corner is integer reproduces the plain slice exactly.
    """
    b, _, img_h, img_w = check_images(x)
    out_h, out_w = check_size(size)
    if b == 0:
        return x.new_empty((0, x.shape[1], out_h, out_w))
    work = to_float(x)
    box = [torch.as_tensor(v, device=x.device).to(work.dtype).reshape(b) for v in (top, left, height, width)]
    top_f, left_f, height_f, width_f = box
    theta = torch.zeros(b, 2, 3, dtype=work.dtype, device=x.device)
    theta[:, 0, 0] = width_f / img_w
    theta[:, 0, 2] = (2 * left_f + width_f) / img_w - 1
    theta[:, 1, 1] = height_f / img_h
    theta[:, 1, 2] = (2 * top_f + height_f) / img_h - 1
    grid = F.affine_grid(theta, [b, x.shape[1], out_h, out_w], align_corners=False)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return restore_dtype(out, x.dtype)


def sample_boxes(
    batch: int,
    img_h: int,
    img_w: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    x: torch.Tensor,
    generator: torch.Generator | None,
    attempts: int = 10,
) -> Params:
    """Draw one integer box per sample as described in the module docstring; values are int64 (B,)."""
    area = img_h * img_w
    draws = rand((4, batch, attempts), x, generator)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * draws[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * draws[1])
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= img_w) & (h > 0) & (h <= img_h)
    any_fit = fits.any(dim=1)
    first = torch.argmax(fits.to(torch.int8), dim=1, keepdim=True)  # first fitting attempt
    w_pick = w.gather(1, first).squeeze(1)
    h_pick = h.gather(1, first).squeeze(1)
    # Offsets uniform in 0..img-h inclusive, from the draws of the chosen attempt.
    top_pick = torch.floor(draws[2].gather(1, first).squeeze(1) * (img_h - h_pick + 1))
    left_pick = torch.floor(draws[3].gather(1, first).squeeze(1) * (img_w - w_pick + 1))
    fb_h, fb_w = _fallback_box(img_h, img_w, ratio)
    fallback = torch.tensor([(img_h - fb_h) // 2, (img_w - fb_w) // 2, fb_h, fb_w], dtype=w.dtype, device=x.device)
    chosen = torch.stack([top_pick, left_pick, h_pick, w_pick], dim=1)
    boxes = torch.where(any_fit.unsqueeze(1), chosen, fallback.unsqueeze(0)).long()
    return {"top": boxes[:, 0], "left": boxes[:, 1], "height": boxes[:, 2], "width": boxes[:, 3]}


def _fallback_box(img_h: int, img_w: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """The whole image, trimmed to the nearest allowed aspect ratio (torchvision's fallback)."""
    in_ratio = img_w / img_h
    if in_ratio < ratio[0]:
        return int(round(img_w / ratio[0])), img_w
    if in_ratio > ratio[1]:
        return img_h, int(round(img_h * ratio[1]))
    return img_h, img_w


def random_resized_crop(
    x: torch.Tensor,
    size: int | Sequence[int],
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    *,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Crop a random box (area fraction in ``scale``, aspect ratio in ``ratio``) and resize to ``size``.

    Defaults are torchvision's / SimCLR's (Chen et al. 2020). Params: ``{"top", "left", "height",
    "width"}``, each (B,) int64, the box in input pixels.
    """
    b, _, img_h, img_w = check_images(x)
    out_size = check_size(size)
    scale_pair = check_interval(scale, "scale", low=0.0)
    ratio_pair = check_interval(ratio, "ratio", low=0.0)
    if scale_pair[1] <= 0.0 or ratio_pair[0] <= 0.0:
        raise ValueError(f"scale must have hi > 0 and ratio lo > 0, got scale={scale!r}, ratio={ratio!r}")
    params = sample_boxes(b, img_h, img_w, scale_pair, ratio_pair, x, generator)
    out = resized_crop(x, params["top"], params["left"], params["height"], params["width"], out_size)
    return (out, params) if return_params else out
