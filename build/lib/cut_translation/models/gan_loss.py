"""GAN objectives for the PatchGAN discriminator: least squares (default), vanilla, hinge.

Park et al. 2020 and Zhu et al. 2017 use least squares (``--gan_mode lsgan``, Mao et al. 2017).
``D(x)`` is a map of patch logits; every loss is averaged over the map and the batch.

- ``lsgan``:   D: ``mean((D(real) - 1)^2)`` + ``mean(D(fake)^2)``; G: ``mean((D(G(x)) - 1)^2)``
- ``vanilla``: D: ``BCE(D(real), 1) + BCE(D(fake), 0)`` on logits; G: ``BCE(D(G(x)), 1)`` (non-saturating)
- ``hinge``:   D: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``; G: ``-mean(D(G(x)))``

The discriminator objective returned by :func:`discriminator_loss` is ``0.5 * (real term + fake term)``,
the weighting of both reference codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_MODES = ("lsgan", "vanilla", "hinge")


def check_gan_mode(mode: str) -> None:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`GAN_MODES`."""
    if mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {mode!r}")


def real_fake_loss(pred: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """The discriminator-side term for one set of predictions (real or fake)."""
    check_gan_mode(mode)
    if mode == "lsgan":
        target = 1.0 if target_is_real else 0.0
        return (pred - target).pow(2).mean()
    if mode == "vanilla":
        target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
        return F.binary_cross_entropy_with_logits(pred, target)
    sign = -1.0 if target_is_real else 1.0
    return F.relu(1.0 + sign * pred).mean()


def discriminator_loss(pred_real: torch.Tensor, pred_fake: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """``0.5 * (L(D(real), real) + L(D(fake), fake))``; ``pred_fake`` must come from detached fakes."""
    return 0.5 * (real_fake_loss(pred_real, True, mode) + real_fake_loss(pred_fake, False, mode))


def generator_loss(pred_fake: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """The generator's adversarial loss on ``D(G(x))`` (see the module docstring)."""
    check_gan_mode(mode)
    if mode == "hinge":
        return -pred_fake.mean()
    return real_fake_loss(pred_fake, True, mode)
