"""Split-brain autoencoder (Zhang, Isola & Efros 2017, CVPR): cross-channel prediction.

The network is split into two disjoint halves that each see one group of Lab channels and predict
the other group, both as classification (the paper found cross-entropy better than L2):

    F1: L  -> ab    cross-entropy over the Q quantised in-gamut ab bins (:class:`ABQuantizer`)
    F2: ab -> L     cross-entropy over 100 lightness bins (floor(L), L in [0, 100))
    L = CE(F1(L), bins(ab)) + CE(F2(ab), bins(L))       (targets at 1/output_stride resolution)

The representation is the concatenation ``[F1(x), F2(x)]`` of both halves, so :meth:`encoder` has
``feature_dim = 2 * feature_dim``. ``F1`` is the given backbone, ``F2`` a fresh copy of it (same
architecture, re-initialised). The backbone reads ``in_channels`` channels: F1 gets ``L / 100``
repeated, F2 gets ``(a / 110, b / 110)`` followed by zero channels (it needs ``in_channels >= 2``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import SSLMethod, as_unit_float, backbone_pixel_scale
from ssl_shared.methods.colorization import check_rgb_shape, downsample
from ssl_shared.methods.decoder import ConvDecoder, backbone_in_channels
from ssl_shared.methods.lab import ABQuantizer, rgb_to_lab

LIGHTNESS_BINS = 100
AB_SCALE = 110.0


@dataclass
class SplitBrainConfig:
    # Zhang et al. 2017: ab grid 10 (Q bins in gamut), L quantised into 100 bins, classification loss.
    grid: float = 10.0
    output_stride: int = 4
    decoder_channels: int = 64
    in_channels: int | None = None

    def __post_init__(self) -> None:
        if self.output_stride < 1 or self.grid <= 0:
            raise ValueError(f"need output_stride >= 1 and grid > 0, got {self.output_stride}, {self.grid}")


def split_lab_inputs(rgb: Tensor, channels: int) -> tuple[Tensor, Tensor]:
    """Inputs of the two halves: ``L/100`` repeated to ``channels``, and ``(a, b)/110`` zero-padded."""
    lab = rgb_to_lab(rgb)
    light = (lab[:, :1] / 100.0).expand(-1, channels, -1, -1).contiguous()
    ab = lab[:, 1:] / AB_SCALE
    pad = torch.zeros(ab.shape[0], channels - 2, *ab.shape[2:], device=ab.device, dtype=ab.dtype)
    return light, torch.cat([ab, pad], dim=1)


def reset_parameters(module: nn.Module) -> None:
    for sub in module.modules():
        if sub is not module and hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


class SplitBrainEncoder(nn.Module):
    """RGB images -> ``[F1(L), F2(ab)]``, width ``2 * half_dim``."""

    def __init__(self, light_net: nn.Module, color_net: nn.Module, half_dim: int, channels: int) -> None:
        super().__init__()
        self.light_net, self.color_net = light_net, color_net
        self.channels = channels
        self.feature_dim = 2 * half_dim
        self.pixel_scale = backbone_pixel_scale(light_net)

    def forward(self, images: Tensor) -> Tensor:
        light, ab = split_lab_inputs(as_unit_float(images), self.channels)
        return torch.cat([self.light_net(light * self.pixel_scale), self.color_net(ab * self.pixel_scale)], dim=1)


class SplitBrain(SSLMethod):
    name: ClassVar[str] = "split_brain"
    family: ClassVar[str] = "self-prediction"
    citation: ClassVar[str] = "Zhang, Isola & Efros 2017, arXiv 1611.09842"
    input_note: ClassVar[str] = "RGB"
    config_class: ClassVar[type] = SplitBrainConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: SplitBrainConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        self.backbone_channels = backbone_in_channels(backbone, self.config.in_channels)
        if self.backbone_channels < 2:
            raise ValueError(
                "split-brain feeds (a, b) to a copy of the backbone: needs in_channels >= 2, "
                f"got {self.backbone_channels}"
            )
        self.color_backbone = copy.deepcopy(backbone)
        reset_parameters(self.color_backbone)
        self.quantizer = ABQuantizer(self.config.grid)
        self.ab_decoder = ConvDecoder(feature_dim, self.quantizer.num_bins, self.config.decoder_channels)
        self.light_decoder = ConvDecoder(feature_dim, LIGHTNESS_BINS, self.config.decoder_channels)

    def validate_input(self, image_shape, num_frames=None) -> None:
        check_rgb_shape(self.name, image_shape, self.config.output_stride)

    def encoder(self) -> nn.Module:
        return SplitBrainEncoder(self.backbone, self.color_backbone, self.feature_dim, self.backbone_channels)

    def targets(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Hard ab-bin and lightness-bin targets at ``1/output_stride`` resolution."""
        lab = downsample(rgb_to_lab(x), self.config.output_stride)
        ab_bins = self.quantizer.encode_hard(lab[:, 1:])
        light_bins = lab[:, 0].floor().long().clamp(0, LIGHTNESS_BINS - 1)
        return ab_bins, light_bins

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        if x.shape[1] != 3:
            raise ValueError(f"split-brain needs RGB images, got {x.shape[1]} channels")
        ab_bins, light_bins = self.targets(x)
        light_in, ab_in = split_lab_inputs(x, self.backbone_channels)
        size = ab_bins.shape[-2:]
        ab_logits = self.ab_decoder(self.encode(light_in), size)
        light_logits = self.light_decoder(self.color_backbone(ab_in * self.pixel_scale), size)
        loss_ab = F.cross_entropy(ab_logits, ab_bins)
        loss_light = F.cross_entropy(light_logits, light_bins)
        loss = loss_ab + loss_light
        return loss, {"loss": loss.item(), "l_to_ab": loss_ab.item(), "ab_to_l": loss_light.item()}
