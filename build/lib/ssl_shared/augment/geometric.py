"""Flips and quarter-turn rotations, per sample, with their labels.

Both act on all channels of a sample at once, so every frame of a stack (C = 3k) gets the same
transform. ``rot90`` returns the rotation label ``k`` for rotation-prediction pretext tasks
(RotNet, Gidaris et al. 2018).
"""

from __future__ import annotations

import torch

from ssl_shared.augment._common import bernoulli, check_images, check_probability, per_sample, randint

Params = dict[str, torch.Tensor]


def horizontal_flip(
    x: torch.Tensor,
    p: float = 0.5,
    *,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Mirror each sample left-right with probability ``p``. Params: ``{"flip": (B,) bool}``."""
    b, _, _, _ = check_images(x)
    p = check_probability(p)
    flip = bernoulli(p, b, x, generator)
    out = torch.where(per_sample(flip, 4), x.flip(3), x)
    return (out, {"flip": flip}) if return_params else out


def rot90_by(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate sample ``i`` by ``k[i]`` quarter turns, each equal to ``torch.rot90(x[i], k[i], dims=(1, 2))``.

    ``k`` is an integer tensor of shape (B,); it is taken modulo 4 (so ``rot90_by(y, -k)`` undoes a
    rotation). Images must be square, since all samples of the output share one shape.
    """
    b, c, height, width = check_images(x)
    if height != width:
        raise ValueError(f"rot90 needs square images, got H={height}, W={width}")
    k = torch.as_tensor(k, device=x.device).long().reshape(-1)
    if k.numel() != b:
        raise ValueError(f"k needs one entry per sample (B={b}), got {k.numel()}")
    n = height
    r = torch.arange(n, device=x.device).view(n, 1).expand(n, n)
    col = torch.arange(n, device=x.device).view(1, n).expand(n, n)
    # Source pixel of output (r, col) for k = 0, 1, 2, 3 counter-clockwise quarter turns.
    src_row = torch.stack([r, col, n - 1 - r, n - 1 - col])
    src_col = torch.stack([col, n - 1 - r, n - 1 - col, r])
    flat = (src_row * n + src_col).view(4, n * n)[k % 4]  # (B, n*n)
    out = x.reshape(b, c, n * n).gather(2, flat.unsqueeze(1).expand(b, c, n * n))
    return out.view(b, c, n, n)


def rot90(
    x: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """Rotate each sample by a random multiple of 90 degrees, ``k`` uniform in 0..3.

    Params: ``{"k": (B,) int64}`` (the rotation label; ``torch.rot90(x[i], k[i], dims=(1, 2))``).
    """
    b, _, height, width = check_images(x)
    if height != width:
        raise ValueError(f"rot90 needs square images, got H={height}, W={width}")
    k = randint(0, 3, (b,), x, generator)
    out = rot90_by(x, k)
    return (out, {"k": k}) if return_params else out
