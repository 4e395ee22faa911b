"""Any single-image SSL method of ``ssl_shared.methods`` as an auxiliary objective.

    --aux ssl_method --aux-kwargs '{"method": "denoising_ae", "options": {"noise_std": 0.2}}'

The method is built by name with the critic's online encoder as its backbone; its loss is
``method.training_step({"image": obs / 255})`` on the critic's augmented view ``obs`` (so every
objective sees the same views), and its momentum encoders, queues or memory banks advance in
``method.after_optimizer_step`` after each update. The objective owns the method's heads (and their
EMA copies); the encoder stays the algorithm's (it is not part of this objective's ``state_dict``).

Applies to methods whose only input is the image and whose ``validate_input`` accepts the stacked
observation shape (e.g. ``(9, 84, 84)``): ``denoising_ae``, ``vae``, ``context_encoder``, ``mae``,
``simclr``, ``byol``, ``moco_v2``, ``rotation``, .... Methods that need dataset indices, labels, frame
sequences or RGB images (colorization, split-brain) raise ``ValueError`` at construction, naming why.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from curl_agents.objectives.base import AuxBatch, AuxObjective


class SslMethodObjective(AuxObjective):
    """Wraps ``ssl_shared.methods.build_method(method, encoder, feature_dim, **options)``; the loss is
    the method's own (see its docstring)."""

    name: ClassVar[str] = "ssl_method"
    summary: ClassVar[str] = "any image-only method of ssl_shared.methods, by name (docs/ssl_methods.md)"
    second_input: ClassVar[str] = "the method's own views of obs"
    citation: ClassVar[str] = "the method's paper (docs/ssl_methods.md)"

    def __init__(
        self,
        encoder: nn.Module,
        target_encoder: nn.Module,
        action_dim: int,
        *,
        lr: float = 1e-3,
        weight: float = 1.0,
        method: str = "denoising_ae",
        options: dict[str, Any] | None = None,
        schedule_steps: int = 100_000,
    ) -> None:
        from ssl_shared.methods import METHODS, build_method

        super().__init__(encoder, target_encoder, action_dim, lr=lr, weight=weight)
        if method not in METHODS:
            raise ValueError(f"unknown SSL method {method!r}; available: {sorted(METHODS)}")
        extra = sorted(set(METHODS[method].required_inputs) - {"image"})
        if extra:
            raise ValueError(f"SSL method {method!r} needs batch inputs {extra} that replay batches do not have")
        ssl = build_method(method, encoder, self.feature_dim, **(options or {}))
        ssl.validate_input(tuple(encoder.obs_shape))
        # Keep the encoder reachable as ssl.backbone but not registered: it belongs to the algorithm.
        del ssl._modules["backbone"]
        object.__setattr__(ssl, "backbone", encoder)
        self.method = ssl
        self.method_name = method
        if schedule_steps < 1:
            raise ValueError(f"schedule_steps must be >= 1, got {schedule_steps}")
        self.schedule_steps = schedule_steps  # horizon of the method's schedules (e.g. BYOL's momentum)
        self._updates = 0
        self._finish_init()

    def head_parameters(self) -> list[nn.Parameter]:
        """The method's own trainable parameters. Some methods (BYOL, MoCo) also hold the backbone
        inside a module of theirs; the encoder's parameters are the algorithm's and are left out here
        (the base class adds them once to the optimizer)."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in encoder_ids]

    def compute_loss(self, batch: AuxBatch) -> tuple[torch.Tensor, dict[str, float]]:
        loss, logs = self.method.training_step(
            {"image": batch.obs / 255.0}, step=self._updates, total_steps=self.schedule_steps
        )
        return loss, dict(logs)

    def _after_step(self) -> None:
        self.method.after_optimizer_step(self._updates, self.schedule_steps)
        self._updates += 1
