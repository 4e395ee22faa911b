"""The contract every SSL method follows, and the encoder wrapper handed to probes.

A method is an ``nn.Module`` built from a backbone ``(B, C, H, W) -> (B, feature_dim)`` plus its own
heads and loss. The trainer only ever calls:

    loss, logs = method.training_step(batch, step, total_steps)   # batch: dict of tensors
    loss.backward(); optimizer.step()
    method.after_optimizer_step(step, total_steps)                # momentum, queue, memory bank
    probe_encoder = method.encoder()                              # raw images -> representation

Images arrive as floats in ``[0, 1]`` or as ``uint8`` in ``[0, 255]``; :func:`as_unit_float` turns
both into floats in ``[0, 1]``. Backbones that expect pixel values in ``[0, 255]`` (the CURL
``PixelEncoder``, which divides by 255 itself) are fed ``255 * x``; see :func:`backbone_pixel_scale`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ssl_shared.encoders import PixelEncoder


def as_unit_float(images: Tensor) -> Tensor:
    """``uint8`` images -> float in ``[0, 1]``; float images are returned as float32 unchanged."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not torch.is_floating_point(images):
        raise ValueError(f"images must be uint8 or floating point, got dtype {images.dtype}")
    return images.float()


def backbone_pixel_scale(backbone: nn.Module) -> float:
    """255 for backbones that divide their input by 255 themselves (``PixelEncoder``), else 1."""
    return 255.0 if isinstance(backbone, PixelEncoder) else 1.0


#: Every batch key a method may read (the trainer's batch dict): images ``(B, C, H, W)``, dataset indices
#: ``(B,)``, labels ``(B,)`` with ``-1`` for unlabelled rows, frame sequences ``(B, T, C, H, W)``.
BATCH_KEYS: tuple[str, ...] = ("image", "index", "label", "frames")


def check_batch_keys(name: str, batch: dict[str, Tensor], required: set[str]) -> None:
    missing = sorted(required - set(batch))
    if missing:
        raise ValueError(f"method {name!r} needs batch keys {sorted(required)}, missing {missing}")


class MethodEncoder(nn.Module):
    """What probes see: raw images -> method-specific input transform -> backbone features.

    ``input_transform`` maps float images in ``[0, 1]`` to what the backbone was trained on
    (identity for most methods, the lightness channel for colorization). ``feature_dim`` is the
    width of the output.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        input_transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.input_transform = input_transform
        self.pixel_scale = backbone_pixel_scale(backbone)

    def forward(self, images: Tensor) -> Tensor:
        x = as_unit_float(images)
        if self.input_transform is not None:
            x = self.input_transform(x)
        return self.backbone(x * self.pixel_scale)


class SSLMethod(nn.Module):
    """Base class: stores the backbone and config and provides the shared plumbing.

    Subclasses set ``name``, ``family``, ``citation``, ``config_class`` and ``required_inputs`` and
    implement :meth:`training_step`; they override :meth:`after_optimizer_step`, :meth:`encoder` and
    :meth:`validate_input` where they need to. ``family``, ``citation``, ``required_inputs`` and
    ``input_note`` make the method's row of ``docs/ssl_methods.md`` (``python -m ssl_shared.methods.table``).
    """

    name: ClassVar[str] = "base"
    # Kind of pretext task (self-prediction, innate relationship, contrastive, distillation, temporal, ...).
    family: ClassVar[str] = ""
    # The paper(s): authors, year and arXiv id where the paper has one.
    citation: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    # Batch keys the method reads, a subset of BATCH_KEYS.
    required_inputs: ClassVar[set[str]] = {"image"}
    # What the batch keys must also satisfy, for the methods table (e.g. "RGB", "square").
    input_note: ClassVar[str] = ""
    # Smallest batch the method can train on (in-batch negatives, BatchNorm1d in a head, a second image).
    min_batch_size: ClassVar[int] = 1

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: Any = None) -> None:
        super().__init__()
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {feature_dim}")
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise ValueError(
                f"method {self.name!r} expects a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.config = config
        self.pixel_scale = backbone_pixel_scale(backbone)

    # --- the interface -------------------------------------------------------------------------
    def training_step(
        self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1
    ) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Momentum encoders, queues and memory banks are updated here; nothing by default."""

    def encoder(self) -> nn.Module:
        return MethodEncoder(self.backbone, self.feature_dim)

    def validate_input(self, image_shape: tuple[int, int, int], num_frames: int | None = None) -> None:
        """Raise ``ValueError`` if images of ``(C, H, W)`` cannot be used; default: any 3-tuple."""
        check_image_shape(self.name, image_shape)

    # --- helpers for subclasses ----------------------------------------------------------------
    def images(self, batch: dict[str, Tensor]) -> Tensor:
        check_batch_keys(self.name, batch, self.required_inputs)
        images = batch["image"]
        if images.ndim != 4:
            raise ValueError(f"batch['image'] must be (B, C, H, W), got shape {tuple(images.shape)}")
        return as_unit_float(images)

    def encode(self, x: Tensor) -> Tensor:
        """Backbone features of float images in ``[0, 1]`` (rescaled for 0..255 backbones)."""
        return self.backbone(x * self.pixel_scale)

    def check_backbone_accepts(self, shape: tuple[int, int, int], what: str) -> None:
        """Run the backbone once on zeros of ``shape``; a failure becomes a clear ``ValueError``."""
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                param = next(self.backbone.parameters(), None)
                device = param.device if param is not None else torch.device("cpu")
                out = self.backbone(torch.zeros(2, *shape, device=device))
        except (RuntimeError, ValueError) as err:
            raise ValueError(
                f"method {self.name!r} feeds the backbone {what} of shape {shape}, which it rejects "
                f"({err}); use a size-agnostic backbone (e.g. SmallResNet) or larger images"
            ) from err
        finally:
            self.backbone.train(was_training)
        if out.shape != (2, self.feature_dim):
            raise ValueError(
                f"backbone returned shape {tuple(out.shape)[1:]} for {what}, expected ({self.feature_dim},)"
            )


def check_image_shape(name: str, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"method {name!r}: image_shape must be (C, H, W) with positive sizes, got {image_shape}")
    c, h, w = (int(s) for s in image_shape)
    return c, h, w


def config_from_overrides(config_class: type, overrides: dict[str, Any]) -> Any:
    """``config_class(**overrides)`` with unknown keys reported as ``ValueError``; a dict given for a
    nested dataclass field (e.g. ``views={"jitter_strength": 1.0}``) updates that field's default."""
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown options {unknown} for {config_class.__name__}; allowed: {sorted(known)}")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values = dict(overrides)
    for key, value in overrides.items():
        default_factory = fields[key].default_factory
        if isinstance(value, dict) and default_factory is not dataclasses.MISSING:
            default = default_factory()
            if dataclasses.is_dataclass(default):
                values[key] = config_from_overrides(type(default), {**dataclasses.asdict(default), **value})
    return config_class(**values)
