"""Colorful image colorization (Zhang, Isola & Efros 2016, ECCV) as a pretext task.

The backbone sees only the lightness ``L`` (as a grey image); a decoder predicts, at ``1/stride`` of
the resolution, a distribution over the ``Q`` quantised in-gamut ``ab`` bins (:mod:`.lab`):

    Z      = soft encoding of the true ab (5 nearest bins, Gaussian sigma 5)
    v(Z)   = w[argmax_q Z_q],   w ∝ ((1 - lambda) p~ + lambda / Q)^-1,  sum_q p~_q w_q = 1
    L      = -1/(B h w) sum_{b,h,w} v(Z_bhw) sum_q Z_bhwq log softmax(logits)_bhwq

``p~`` is the empirical distribution of ab bins smoothed by a Gaussian (sigma 5) in ab space. Zhang
estimate it once on ImageNet; here it is a running estimate (exponential moving average with
``prior_momentum`` of the per-batch hard-bin histograms, initialised from the first batch), so the
weights adapt to whatever data set the method is trained on. ``lambda = 0.5`` as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_shared.methods.base import MethodEncoder, SSLMethod
from ssl_shared.methods.decoder import ConvDecoder, backbone_in_channels
from ssl_shared.methods.lab import ABQuantizer, lightness_input, rebalancing_weights, rgb_to_lab


@dataclass
class ColorizationConfig:
    # Zhang et al. 2016: grid 10, soft encoding 5 neighbours sigma 5, rebalancing lambda 0.5,
    # prior smoothing sigma 5, output at 1/4 of the input resolution.
    grid: float = 10.0
    soft_neighbors: int = 5
    soft_sigma: float = 5.0
    rebalance_mix: float = 0.5
    prior_sigma: float = 5.0
    prior_momentum: float = 0.99
    output_stride: int = 4
    decoder_channels: int = 64
    in_channels: int | None = None

    def __post_init__(self) -> None:
        if self.soft_neighbors < 1 or self.soft_sigma <= 0 or self.prior_sigma <= 0:
            raise ValueError("soft_neighbors must be >= 1 and the sigmas > 0")
        if not 0.0 <= self.prior_momentum < 1.0 or not 0.0 <= self.rebalance_mix <= 1.0:
            raise ValueError(
                f"need prior_momentum in [0, 1) and rebalance_mix in [0, 1], got {self.prior_momentum}, "
                f"{self.rebalance_mix}"
            )
        if self.output_stride < 1:
            raise ValueError(f"output_stride must be >= 1, got {self.output_stride}")


def downsample(x: Tensor, stride: int) -> Tensor:
    """Average over ``stride x stride`` cells (the target resolution of the colour prediction)."""
    return F.avg_pool2d(x, stride) if stride > 1 else x


def check_rgb_shape(name: str, image_shape: tuple[int, ...], stride: int) -> None:
    if len(image_shape) != 3 or image_shape[0] != 3:
        raise ValueError(f"method {name!r} needs RGB images (3, H, W), got {image_shape}")
    if min(image_shape[1:]) < stride:
        raise ValueError(f"method {name!r}: images {image_shape} are smaller than output_stride {stride}")


class Colorization(SSLMethod):
    name: ClassVar[str] = "colorization"
    family: ClassVar[str] = "self-prediction"
    citation: ClassVar[str] = "Zhang, Isola & Efros 2016, arXiv 1603.08511"
    input_note: ClassVar[str] = "RGB"
    config_class: ClassVar[type] = ColorizationConfig

    def __init__(self, backbone: nn.Module, feature_dim: int, *, config: ColorizationConfig | None = None):
        super().__init__(backbone, feature_dim, config=config)
        self.backbone_channels = backbone_in_channels(backbone, self.config.in_channels)
        self.quantizer = ABQuantizer(self.config.grid)
        q = self.quantizer.num_bins
        self.decoder = ConvDecoder(feature_dim, q, self.config.decoder_channels)
        self.register_buffer("prior", torch.full((q,), 1.0 / q))
        self.register_buffer("prior_initialized", torch.zeros((), dtype=torch.bool))

    def validate_input(self, image_shape, num_frames=None) -> None:
        check_rgb_shape(self.name, image_shape, self.config.output_stride)

    def encoder(self) -> nn.Module:
        channels = self.backbone_channels
        return MethodEncoder(self.backbone, self.feature_dim, lambda x: lightness_input(x, channels))

    @torch.no_grad()
    def update_prior(self, hard_bins: Tensor) -> None:
        """EMA of the hard-bin histogram (the first batch initialises it)."""
        hist = torch.bincount(hard_bins.flatten(), minlength=self.quantizer.num_bins).float()
        hist = hist / hist.sum()
        if not bool(self.prior_initialized):
            self.prior.copy_(hist)
            self.prior_initialized.fill_(True)
        else:
            self.prior.mul_(self.config.prior_momentum).add_((1 - self.config.prior_momentum) * hist)

    def class_weights(self) -> Tensor:
        smoothed = self.quantizer.gaussian_smooth(self.prior, self.config.prior_sigma)
        return rebalancing_weights(smoothed, self.config.rebalance_mix)

    def training_step(self, batch: dict[str, Tensor], step: int = 0, total_steps: int = 1):
        x = self.images(batch)
        if x.shape[1] != 3:
            raise ValueError(f"colorization needs RGB images, got {x.shape[1]} channels")
        stride = self.config.output_stride
        ab = downsample(rgb_to_lab(x)[:, 1:], stride)
        target = self.quantizer.encode_soft(ab, self.config.soft_neighbors, self.config.soft_sigma)
        hard = target.argmax(dim=1)
        self.update_prior(hard)
        pixel_weight = self.class_weights()[hard]
        logits = self.decoder(self.encode(lightness_input(x, self.backbone_channels)), ab.shape[-2:])
        ce = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
        loss = (pixel_weight * ce).mean()
        return loss, {"loss": loss.item(), "unweighted_ce": ce.mean().item()}
