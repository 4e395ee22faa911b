"""S4L: self-supervised semi-supervised learning (Zhai, Oliver, Kolesnikov & Beyer 2019, ICCV).

Any image pretext method of the registry (by name) plus a supervised classifier on the same backbone,
trained on the labelled part of the batch (``label != -1``):

    L = L_sup(labelled) + w * L_pretext(all images)
    L_sup = -1/|labelled| sum_{i labelled} log softmax(W f(x_i))_{y_i}     (0 if no sample is labelled)

The paper's S4L-Rotation uses the rotation pretext; ``w`` was tuned per setup (1.0 here).

The classifier runs on every image of the batch and the unlabelled rows are masked out of ``L_sup``, so
each step has the same shapes whatever the labels (every process of a data-parallel run runs the same
forward, which SyncBatchNorm needs); batch-norm statistics of that pass are those of the whole batch.
``|labelled|`` counts the labelled samples of all processes
(:func:`ssl_shared.losses.distributed.global_masked_mean`), so averaging over processes gives the
single-process ``L_sup`` of the concatenated batch even when processes hold different numbers of labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.losses import distributed
from ssl_shared.methods.base import SSLMethod


@dataclass
class S4LConfig:
    # Zhai et al. 2019: S4L-Rotation, pretext weight w = 1.
    pretext: str = "rotation"
    pretext_options: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 10
    pretext_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.num_classes < 2 or self.pretext_weight < 0:
            raise ValueError(
                f"need num_classes >= 2 and pretext_weight >= 0, got {self.num_classes}, {self.pretext_weight}"
            )


class S4L(SSLMethod):
    name: ClassVar[str] = "s4l"
    family: ClassVar[str] = "semi-supervised"
    citation: ClassVar[str] = "Zhai, Oliver, Kolesnikov & Beyer 2019, arXiv 1905.03670"
    input_note: ClassVar[str] = "plus the pretext's keys"
    config_class: ClassVar[type] = S4LConfig
    required_inputs: ClassVar[set[str]] = {"image", "label"}

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: S4LConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        from ssl_shared.methods.registry import build_method  # the registry imports this module

        if self.config.pretext == self.name:
            raise ValueError("S4L's pretext cannot be S4L itself")
        self.pretext = build_method(self.config.pretext, backbone, feature_dim, **self.config.pretext_options)
        if "frames" in self.pretext.required_inputs:
            raise ValueError(f"S4L combines image pretext tasks; {self.config.pretext!r} needs frame sequences")
        self.classifier = nn.Linear(feature_dim, self.config.num_classes)
        self.required_inputs = set(self.pretext.required_inputs) | {"image", "label"}

    def validate_input(self, image_shape, num_frames=None) -> None:
        self.pretext.validate_input(image_shape)

    def encoder(self) -> nn.Module:
        return self.pretext.encoder()

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.pretext.after_optimizer_step(step, total_steps)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        labels = batch["label"].to(x.device).long()
        if labels.shape != (x.shape[0],):
            raise ValueError(f"batch['label'] must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
        if bool((labels >= self.config.num_classes).any()) or bool((labels < -1).any()):
            raise ValueError(f"labels must be -1 (unlabelled) or in [0, {self.config.num_classes - 1}]")
        pretext_loss, pretext_logs = self.pretext.training_step(batch, step, total_steps)
        labelled = labels != -1
        logits = self.classifier(self.encode(x))
        per_sample = F.cross_entropy(logits, labels.clamp_min(0), reduction="none")
        sup = distributed.global_masked_mean(per_sample, labelled)
        loss = sup + self.config.pretext_weight * pretext_loss
        logs = {"loss": loss.item(), "supervised": sup.item(), "labelled_fraction": labelled.float().mean().item()}
        logs.update({f"pretext/{k}": v for k, v in pretext_logs.items()})
        return loss, logs
