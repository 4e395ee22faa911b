"""The contract between an algorithm and an auxiliary (self-supervised) objective.

An algorithm builds one :class:`AuxBatch` per gradient step (the same augmented views for every
objective, so comparisons isolate the objective) and calls :meth:`AuxObjective.update` once. The
objective owns its heads and exactly one optimizer, which covers those heads plus the online
encoder's parameters; the target encoder is read, never stepped. (The one documented exception is
CURL's ``official_double_step``, which copies the official code's second encoder optimizer.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ssl_shared.momentum import freeze, polyak_update


@dataclass
class AuxBatch:
    """One replay batch as seen by an auxiliary objective (float tensors on the training device).

    Attributes:
        obs: ``(B, C, h, w)`` in ``[0, 255]``, augmented view 1 of ``o_t`` (the critic's view).
        obs_pos: ``(B, C, h, w)`` in ``[0, 255]``, an independent augmented view 2 of ``o_t``.
        next_obs: ``(B, C, h, w)`` in ``[0, 255]``, augmented ``o_{t+1}``.
        action: ``(B, A)`` in ``[-1, 1]``.
        reward: ``(B, 1)``.
        done: ``(B, 1)``, 1.0 only for true termination (never for time-limit truncation).
        obs_features: optional ``(B, feature_dim)`` online-encoder output for ``obs`` that the algorithm
            already computed (with its graph), so the objective reuses it instead of encoding ``obs``
            again (the algorithms' ``fused_encoder_step``); ``None``: the objective encodes ``obs``.
    """

    obs: torch.Tensor
    obs_pos: torch.Tensor
    next_obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    obs_features: torch.Tensor | None = None

    def __post_init__(self) -> None:
        batch = self.obs.shape[0] if self.obs.ndim == 4 else None
        if batch is None:
            raise ValueError(f"obs must have shape (B, C, h, w), got {tuple(self.obs.shape)}")
        for name in ("obs_pos", "next_obs"):
            value = getattr(self, name)
            if value.shape != self.obs.shape:
                raise ValueError(f"{name} must have the shape of obs {tuple(self.obs.shape)}, got {tuple(value.shape)}")
        if self.action.ndim != 2 or self.action.shape[0] != batch:
            raise ValueError(f"action must have shape ({batch}, A), got {tuple(self.action.shape)}")
        for name in ("reward", "done"):
            value = getattr(self, name)
            if tuple(value.shape) != (batch, 1):
                raise ValueError(f"{name} must have shape ({batch}, 1), got {tuple(value.shape)}")

    @property
    def batch_size(self) -> int:
        return int(self.obs.shape[0])


@dataclass(frozen=True)
class _Borrowed:
    """Holds the algorithm's encoders without registering them as sub-modules of the objective, so
    that ``objective.parameters()`` and ``objective.state_dict()`` contain only what the objective owns."""

    encoder: nn.Module
    target_encoder: nn.Module


class AuxObjective(nn.Module):
    """Base class of the auxiliary objectives.

    Args:
        encoder: the critic's (online) encoder, ``encoder(obs) -> (B, feature_dim)``; trained by the
            critic loss and by this objective.
        target_encoder: the critic-target encoder, an EMA of ``encoder`` maintained by the algorithm
            (CURL convention: the momentum/key encoder *is* the critic-target encoder). Read under
            ``no_grad``; never stepped here.
        action_dim: size of the action vector.
        lr: Adam learning rate (CURL's encoder lr, 1e-3; Adam betas (0.9, 0.999)).
        weight: multiplier of the loss before ``backward``.

    A subclass builds its heads in ``__init__`` and then calls :meth:`_finish_init`, which moves the
    heads to the encoder's device and creates the single optimizer. It implements
    :meth:`compute_loss`, and optionally :meth:`after_target_update` (move EMA heads) and
    :meth:`_after_step` (e.g. enqueue keys).

    Class attributes: ``name`` (the registry key), and for its row of ``docs/objectives.md``
    (``python -m curl_agents.objectives.table``) ``summary`` (the loss in words), ``second_input`` (what
    the loss compares the online features of ``obs`` with) and ``citation`` (authors, year, arXiv id).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    second_input: ClassVar[str] = ""
    citation: ClassVar[str] = ""

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
    ) -> None:
        super().__init__()
        if encoder is target_encoder:
            raise ValueError("encoder and target_encoder must be two different modules (online and EMA copy)")
        if action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {action_dim}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not weight >= 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self._borrowed = _Borrowed(encoder, target_encoder)
        self.action_dim = int(action_dim)
        self.lr = float(lr)
        self.weight = float(weight)
        self.optimizer: torch.optim.Optimizer | None = None
        self.trains_encoder = True
        self.forward_context: Callable[[], AbstractContextManager] = nullcontext

    # ------------------------------------------------------------------ borrowed encoders
    @property
    def encoder(self) -> nn.Module:
        return self._borrowed.encoder

    @property
    def target_encoder(self) -> nn.Module:
        return self._borrowed.target_encoder

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.feature_dim)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def online_features(self, batch: AuxBatch) -> torch.Tensor:
        """``encoder(batch.obs)``, or the features the algorithm already computed for it."""
        return batch.obs_features if batch.obs_features is not None else self.encoder(batch.obs)

    # ------------------------------------------------------------------ optimizer
    def head_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters the objective owns (EMA copies are frozen, hence excluded)."""
        return [p for p in self.parameters() if p.requires_grad]

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups of the optimizer: by default one group, heads + online encoder."""
        return [{"params": self.head_parameters() + list(self.encoder.parameters())}]

    def _finish_init(self) -> None:
        """Move the heads to the encoder's device and build the one optimizer of this loss."""
        self.to(self.device)
        groups = self.param_groups()
        seen: set[int] = set()
        for group in groups:
            for p in group["params"]:
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: a parameter of shape {tuple(p.shape)} is in two groups")
                seen.add(id(p))
        missing = [
            tuple(p.shape) for p in self.head_parameters() + list(self.encoder.parameters()) if id(p) not in seen
        ]
        if missing:
            raise ValueError(f"{type(self).__name__}: parameters of shapes {missing} are in no optimizer group")
        target_ids = {id(p) for p in self.target_encoder.parameters()}
        if seen & target_ids:
            raise ValueError(f"{type(self).__name__}: the target encoder must not be optimised")
        self.optimizer = torch.optim.Adam(
            groups, lr=self.lr, betas=(0.9, 0.999), fused=True
        )  # same update, fused kernel

    def exclude_encoder_from_optimizer(self) -> None:
        """Rebuild the optimizer over the heads only: the encoder is then stepped by the algorithm's critic
        optimizer on the summed losses (``fused_encoder_step``). Call before the first step."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        groups = []
        for group in self.param_groups():
            params = [p for p in group["params"] if id(p) not in encoder_ids]
            if params:
                groups.append({**group, "params": params})
        self.optimizer = torch.optim.Adam(groups, lr=self.lr, betas=(0.9, 0.999), fused=True)
        self.trains_encoder = False

    @staticmethod
    def _frozen_copy(module: nn.Module) -> nn.Module:
        """An EMA target copy of a head: same weights, no gradients."""
        return freeze(copy.deepcopy(module))

    def _set_projector(self, projector: nn.Module, head_tau: float) -> None:
        """Install the online projector ``g`` and its frozen EMA copy ``g_bar`` (``target_projector``),
        which :meth:`after_target_update` moves towards ``g`` with ``head_tau`` at the moments the
        algorithm moves the target encoder: ``g_bar <- head_tau * g + (1 - head_tau) * g_bar``."""
        if not 0.0 <= head_tau <= 1.0:
            raise ValueError(f"head_tau must be in [0, 1], got {head_tau}")
        self.head_tau = float(head_tau)
        self.projector = projector
        self.target_projector = self._frozen_copy(projector)

    @staticmethod
    def _ema(online: nn.Module, target: nn.Module, tau: float) -> None:
        polyak_update(online, target, tau)

    # ------------------------------------------------------------------ the step
    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The unweighted scalar loss and log values (keys without prefix)."""
        raise NotImplementedError

    def loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The unweighted loss (forward passes under ``forward_context``, e.g. bf16 autocast) and its logs."""
        if self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call self._finish_init()")
        self.train()
        with self.forward_context():
            loss, logs = self.compute_loss(batch)
        return loss.float(), logs

    def update(self, batch: AuxBatch) -> dict[str, float]:
        """One optimizer step on ``weight * loss``; returns the logs prefixed ``"aux/"``.

        Raises ``FloatingPointError`` (before any parameter changes) when the loss is NaN or inf.
        """
        loss, logs = self.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"auxiliary objective {self.name!r} produced a non-finite loss {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        (self.weight * loss).backward()
        self.step_after_backward()
        return {f"aux/{key}": value for key, value in logs.items()}

    def step_after_backward(self) -> None:
        """The optimizer step (and :meth:`_after_step`) once the loss's gradients are in place."""
        self.optimizer.step()
        self._after_step()

    def _after_step(self) -> None:
        """Hook run after the optimizer step (MoCo enqueues its keys here)."""

    def optimizer_names(self) -> list[str]:
        """Attribute names of the objective's optimizers, saved and restored with the algorithm."""
        return ["optimizer"]

    def after_target_update(self) -> None:
        """Hook called by the algorithm right after its EMA step of the target encoder: moves the
        target projector when :meth:`_set_projector` installed one."""
        if hasattr(self, "target_projector"):
            self._ema(self.projector, self.target_projector, self.head_tau)


def top1_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max is the label (for contrastive logits: the positive wins)."""
    return (logits.argmax(dim=1) == labels).float().mean().item()
