"""Momentum (exponential moving average) encoders.

Convention used throughout the suite (the one of CURL, SAC and stable-baselines3):

    target <- (1 - tau) * target + tau * online

so ``tau`` is the weight of the *online* network (CURL: encoder tau 0.05, critic tau 0.01).
MoCo/BYOL write the same update with a momentum ``m = 1 - tau`` (MoCo: m = 0.999).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def _check_tau(tau: float) -> None:
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1] (weight of the online network), got {tau}")


@torch.no_grad()
def polyak_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * online`` for every parameter and floating buffer.

    Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) are copied. The two modules must have
    the same structure; a mismatch raises ``ValueError`` naming the first differing entry.
    """
    _check_tau(tau)
    online_state: dict[str, torch.Tensor] = {**dict(online.named_parameters()), **dict(online.named_buffers())}
    target_state: dict[str, torch.Tensor] = {**dict(target.named_parameters()), **dict(target.named_buffers())}
    if online_state.keys() != target_state.keys():
        diff = sorted(online_state.keys() ^ target_state.keys())
        raise ValueError(f"online and target modules differ in structure, e.g. at {diff[:3]}")
    float_pairs = [(target_state[k], online_state[k]) for k in online_state if torch.is_floating_point(online_state[k])]
    if float_pairs:
        targets, onlines = zip(*float_pairs)
        torch._foreach_lerp_(list(targets), list(onlines), tau)
    for k, value in online_state.items():
        if not torch.is_floating_point(value):
            target_state[k].copy_(value)


def cosine_momentum(step: int, total_steps: int, base_momentum: float, final_momentum: float = 1.0) -> float:
    """BYOL's momentum schedule (Grill et al. 2020, sec. 3.2):

        m(k) = final - (final - base) * (cos(pi * k / K) + 1) / 2

    rising from ``base_momentum`` at step 0 to ``final_momentum`` at step ``total_steps``.
    The matching ``tau`` for :func:`polyak_update` is ``1 - m(k)``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if not 0.0 <= base_momentum <= 1.0 or not 0.0 <= final_momentum <= 1.0:
        raise ValueError(f"momenta must be in [0, 1], got base={base_momentum}, final={final_momentum}")
    progress = min(max(step, 0), total_steps) / total_steps
    return final_momentum - (final_momentum - base_momentum) * (math.cos(math.pi * progress) + 1) / 2


def freeze(module: nn.Module) -> nn.Module:
    """Turn off gradients for every parameter of ``module`` (returned for chaining)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@torch.no_grad()
def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Hard copy (``tau = 1``) of parameters and buffers from ``src`` into ``dst``."""
    polyak_update(src, dst, tau=1.0)


class MomentumEncoder(nn.Module):
    """A frozen EMA copy of an online network (MoCo key encoder, BYOL target).

    ``forward`` runs under ``torch.no_grad`` so keys never carry gradients; ``update(online, tau)``
    moves the copy towards the online weights.
    """

    def __init__(self, online: nn.Module) -> None:
        super().__init__()
        self.module = freeze(copy.deepcopy(online))

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def update(self, online: nn.Module, tau: float) -> None:
        polyak_update(online, self.module, tau)
