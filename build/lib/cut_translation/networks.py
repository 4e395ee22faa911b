"""Generator, discriminator, anti-aliased resampling and weight init for CUT / FastCUT / CycleGAN.

Architecture of Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation",
ECCV 2020 (the CUT code's ``resnet_9blocks`` generator and ``basic`` 70x70 PatchGAN), built from
the CycleGAN blocks of Zhu et al., ICCV 2017.

The generator is one flat ``nn.Sequential`` whose module indices are exactly those of the CUT code,
so the PatchNCE layer indices ``0, 4, 8, 12, 16`` mean the same thing here:

====== ====================================================== ==========================
index  module                                                 feature at crop S
====== ====================================================== ==========================
0      ReflectionPad2d(3) of the input (raw padded pixels)    3 x (S+6) x (S+6)
4      first down conv, 3x3 stride 1, before its norm          2ngf x S x S
8      second down conv, 3x3 stride 1, before its norm         4ngf x S/2 x S/2
12     output of residual block 1                             4ngf x S/4 x S/4
16     output of residual block 5                             4ngf x S/4 x S/4
====== ====================================================== ==========================

(index ``12 + k`` is the output of residual block ``k + 1``; with fewer blocks pick indices that exist,
e.g. ``0, 4, 8, 12, 13`` for a 2-block test model.)

Anti-aliasing (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019), as in the
CUT code: every stride-2 step is a stride-1 conv followed by :class:`BlurPool` (a [1,2,1] x [1,2,1] / 16
low-pass, reflect padding, stride 2), and every up-sampling step is :class:`BlurUpsample` followed by a
stride-1 conv. The CUT code implements the up-sampling as a transposed conv with the fixed
[1,3,3,1] x [1,3,3,1] filter on a replicate-padded input, cropped by one pixel; that operator is
exactly 2x bilinear interpolation (``align_corners=False``, edges clamped), which is what we call.
The blur-pool is the CUT code's depthwise convolution. Both are checked against the CUT formulas in
the tests. Instance norm is computed as group norm with one group per channel (:class:`InstanceNorm`,
same formula, faster on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssl_shared.cli import check_choice, check_positive
from ssl_shared.errors import UserError

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


class InstanceNorm(nn.Module):
    """Instance normalisation without affine parameters or running statistics (the CUT ``normG/normD=instance``).

    ``y[b, c] = (x[b, c] - mean_hw x[b, c]) / sqrt(var_hw x[b, c] + eps)`` (biased variance). Computed as
    group normalisation with one group per channel, the same formula; on CPU it runs several times faster
    than ``nn.InstanceNorm2d``'s batch-norm based kernel.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_channels, eps=self.eps)


class BlurPool(nn.Module):
    """Anti-aliased stride-2 down-sampling: reflect-pad 1, then the [1,2,1] x [1,2,1] / 16 filter at stride 2.

    ``out[i, j] = sum_{a,b in {-1,0,1}} w_a w_b x[2i+a, 2j+b]`` with ``w = (1/4, 1/2, 1/4)`` and
    reflected borders; output size ``ceil(H/2) x ceil(W/2)``. The filter sums to one, so a constant
    image stays constant. The filter is a fixed, non-persistent buffer (not in ``state_dict``).
    """

    def __init__(self) -> None:
        super().__init__()
        w = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (w[:, None] * w[None, :] / 16)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        weight = self.filt.to(x.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, stride=2, groups=channels)


class BlurUpsample(nn.Module):
    """Anti-aliased 2x up-sampling (the CUT code's [1,3,3,1] transposed filter == bilinear, edges clamped).

    ``out[2i] = 3/4 x[i] + 1/4 x[i-1]``, ``out[2i+1] = 3/4 x[i] + 1/4 x[i+1]`` along each axis,
    with ``x[-1] = x[0]`` and ``x[n] = x[n-1]``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ResnetBlock(nn.Module):
    """``x + [ReflPad1, Conv3x3, IN, ReLU, ReflPad1, Conv3x3, IN](x)`` (no dropout, the CUT default)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            InstanceNorm(dim),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            InstanceNorm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


@dataclass
class GeneratorConfig:
    """ResNet generator; defaults are the CUT code's ``resnet_9blocks`` (Park et al. 2020, base_options)."""

    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 64  # generator width: filters of its first convolution
    n_blocks: int = 9  # residual blocks: 9 (paper, 256 px), 6 (CycleGAN's 128 px variant), fewer for tests

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "ngf", "n_blocks"):
            check_positive(name, getattr(self, name))


def encoder_layer_count(n_blocks: int) -> int:
    """Module indices ``0 .. 11 + n_blocks`` of :class:`ResnetGenerator` are encoder layers (PatchNCE layers)."""
    return 12 + n_blocks


def check_nce_layers(layers: tuple[int, ...], n_blocks: int) -> None:
    """Raise ``UserError`` unless ``layers`` is a non-empty, increasing tuple of encoder indices."""
    if not layers:
        raise UserError("--nce-layers: got no layers; allowed: increasing encoder indices, e.g. 0 4 8 12 16")
    if list(layers) != sorted(set(layers)):
        raise UserError(f"--nce-layers: got {' '.join(map(str, layers))}; allowed: strictly increasing indices")
    count = encoder_layer_count(n_blocks)
    bad = [i for i in layers if not 0 <= i < count]
    if bad:
        raise UserError(
            f"--nce-layers: {bad} out of range: the encoder layers of a generator with --n-blocks {n_blocks} are "
            f"0..{count - 1} (the paper uses 0 4 8 12 16 with 9 blocks)"
        )


class ResnetGenerator(nn.Module):
    """Encoder (stem + 2 anti-aliased downs + residual blocks) and decoder (2 anti-aliased ups + tanh head).

    Input ``(B, C, H, W)`` in [-1, 1] with H and W multiples of :attr:`SIZE_MULTIPLE` and at least
    :attr:`MIN_SIZE`; output the same size in (-1, 1). ``self.model`` is flat so that module indices
    match the CUT code (see the module docstring).
    """

    #: The two stride-2 steps halve the resolution twice; the two up-samplings restore it only for multiples of 4.
    SIZE_MULTIPLE = 4
    #: Reflect padding needs a side longer than the pad: the residual blocks pad their (H/4, W/4) maps by 1,
    #: so H/4 and W/4 must be >= 2 (the 3-pixel stem pad and the blur-pool pads then fit too).
    MIN_SIZE = 8

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        c = self.config
        ngf = c.ngf
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(c.in_channels, ngf, 7, bias=True),
            InstanceNorm(ngf),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):  # indices 4-7 and 8-11
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, padding=1, bias=True),
                InstanceNorm(ngf * mult * 2),
                nn.ReLU(inplace=True),
                BlurPool(),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(c.n_blocks)]  # indices 12 .. 12+n_blocks-1
        for mult in (4, 2):
            layers += [
                BlurUpsample(),
                nn.Conv2d(ngf * mult, ngf * mult // 2, 3, padding=1, bias=True),
                InstanceNorm(ngf * mult // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, c.out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    @property
    def num_encoder_layers(self) -> int:
        """Indices ``0 .. 11 + n_blocks`` are encoder layers usable as PatchNCE layers."""
        return encoder_layer_count(self.config.n_blocks)

    def check_nce_layers(self, layers: tuple[int, ...]) -> None:
        """Raise ``UserError`` unless ``layers`` is a non-empty, increasing tuple of this generator's encoder indices."""
        check_nce_layers(layers, self.config.n_blocks)

    def feature_channels(self, layers: tuple[int, ...]) -> list[int]:
        """Channel count of the feature after each module index in ``layers`` (known without a forward)."""
        self.check_nce_layers(layers)
        channels, current = [], self.config.in_channels
        for index, module in enumerate(self.model):
            if isinstance(module, nn.Conv2d):
                current = module.out_channels
            elif isinstance(module, ResnetBlock):
                current = module.dim
            if index in layers:
                channels.append(current)
        return channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """Features after each module index in ``layers``; stops after the last one (the CUT ``encode_only``)."""
        feats = []
        last = layers[-1]
        for index, module in enumerate(self.model):
            x = module(x)
            if index in layers:
                feats.append(x)
            if index == last:
                break
        return feats

    def forward_with_features(
        self, x: torch.Tensor, layers: tuple[int, ...]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output ``G(x)`` together with the encoder features of that same pass."""
        feats = []
        for index, module in enumerate(self.model):
            x = module(x)
            if index in layers:
                feats.append(x)
        return x, feats


@dataclass
class DiscriminatorConfig:
    """70x70 PatchGAN (``basic``, n_layers 3, ndf 64, instance norm; CUT code base_options)."""

    in_channels: int = 3
    ndf: int = 64  # discriminator width: filters of its first convolution
    n_layers: int = 3  # PatchGAN down-sampling layers (3: the 70x70 PatchGAN)

    def __post_init__(self) -> None:
        for name in ("in_channels", "ndf", "n_layers"):
            check_positive(name, getattr(self, name))


class PatchDiscriminator(nn.Module):
    """PatchGAN with anti-aliased down-sampling: each stride-2 conv is a stride-1 conv + :class:`BlurPool`.

    Kernel 4, padding 1, LeakyReLU 0.2, instance norm after every conv but the first and the last.
    A 256x256 input gives a ``(B, 1, 30, 30)`` map of real/fake logits.
    """

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        c = self.config
        ndf = c.ndf
        layers: list[nn.Module] = [
            nn.Conv2d(c.in_channels, ndf, 4, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            BlurPool(),
        ]
        mult = 1
        for n in range(1, c.n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, padding=1, bias=True),
                InstanceNorm(ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
                BlurPool(),
            ]
        prev, mult = mult, min(2**c.n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, padding=1, bias=True),
            InstanceNorm(ndf * mult),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * mult, 1, 4, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(
    module: nn.Module, init_type: str = "xavier", gain: float = 0.02, generator: torch.Generator | None = None
) -> None:
    """Initialise conv and linear weights in place; biases to zero.

    ``normal``: N(0, gain) (CycleGAN default); ``xavier``: xavier_normal_ with ``gain`` (the CUT code's
    default, ``--init_type xavier --init_gain 0.02``); ``kaiming``: kaiming_normal_ (fan_in);
    ``orthogonal``: orthogonal_ with ``gain``. Affine norm weights (none by default) get N(1, gain).
    Every draw comes from ``generator`` (a CPU generator; None: torch's global one), so a seeded
    generator fixes every initial weight of the module.
    """
    check_choice("init_type", init_type, INIT_TYPES)
    if gain <= 0:
        raise UserError(f"--init-gain: got {gain}; allowed: a number > 0")
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear | nn.ConvTranspose2d):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain, generator=generator)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain, generator=generator)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in", generator=generator)
            else:
                nn.init.orthogonal_(m.weight, gain=gain, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d | nn.GroupNorm) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain, generator=generator)
            nn.init.zeros_(m.bias)
