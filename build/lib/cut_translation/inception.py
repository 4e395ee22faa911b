"""InceptionV3 pool3 features (2048-d) for FID and KID, from a weights file the user supplies.

FID (Heusel et al. 2017) is defined on the 2048-d average-pool features of the TensorFlow Inception
graph of 2015-12-05. The reference CUT evaluation uses pytorch-fid, whose port of that graph is
torchvision's ``Inception3`` layout with these differences, reproduced here (variant "fid"):

* ``Mixed_5b/5c/5d`` (InceptionA), ``Mixed_6b..6e`` (InceptionC) and ``Mixed_7b`` (InceptionE): the
  3x3 average pool of the pool branch excludes the zero padding (``count_include_pad=False``);
* ``Mixed_7c`` (InceptionE): that pool is a 3x3 *max* pool;
* 1008 output classes (unused here: features are taken before the classifier).

Weights (nothing is downloaded by this code; pass the file with ``weights_path=`` / ``--inception-weights``
or the environment variable ``CUT_INCEPTION_WEIGHTS``):

* ``pt_inception-2015-12-05-6726825d.pth``, the pytorch-fid release file
  (https://github.com/mseitzer/pytorch-fid/releases, tag ``fid_weights``): variant "fid", features
  comparable to pytorch-fid and so to the published CUT/CycleGAN FIDs. Remaining differences to the
  original TF FID: the bilinear resize to 299x299 (PyTorch's, like pytorch-fid) and float rounding.
* torchvision's ``Inception_V3_Weights.IMAGENET1K_V1`` file (``inception_v3_google-0cc3c7bd.pth``):
  variant "torchvision", the plain torchvision blocks. Its FIDs are NOT comparable to published ones;
  use it only to compare models with each other.

The variant is read from the file (1008 vs 1000 classifier rows) and stored in ``.variant``.
Inputs are float images in [0, 1], shape (N, 3, H, W); they are resized to 299x299 (bilinear) and
scaled to [-1, 1], the input convention of both weight files.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

from ssl_shared.cli import one_line
from ssl_shared.errors import UserError

WEIGHTS_ENV = "CUT_INCEPTION_WEIGHTS"
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048
INPUT_SIZE = 299
_CLASSES = {"fid": 1008, "torchvision": 1000}

WEIGHTS_HELP = (
    "FID/KID need the InceptionV3 weights file, which is never downloaded by this code. Download "
    f"{FID_WEIGHTS_NAME} from the pytorch-fid release page "
    "(https://github.com/mseitzer/pytorch-fid/releases, tag 'fid_weights') for FIDs comparable to "
    "published numbers, or torchvision's inception_v3 IMAGENET1K_V1 file (inception_v3_google-0cc3c7bd.pth, "
    "only for comparisons among your own models), then pass --inception-weights PATH or set "
    f"{WEIGHTS_ENV}=PATH."
)


def _avg_pool_no_pad(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class FIDInceptionA(InceptionA):
    """InceptionA whose pool branch averages over the valid (unpadded) pixels only."""

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class FIDInceptionC(InceptionC):
    """InceptionC whose pool branch averages over the valid (unpadded) pixels only."""

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b7, bd, bp], dim=1)


class FIDInceptionE(InceptionE):
    """InceptionE with the TF graph's pool branch: unpadded average ("avg") or max ("max") pooling."""

    def __init__(self, in_channels: int, pool: str) -> None:
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        super().__init__(in_channels)
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], dim=1)
        pooled = _avg_pool_no_pad(x) if self.pool == "avg" else _max_pool(x)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], dim=1)


def build_inception(variant: str = "fid") -> Inception3:
    """An untrained InceptionV3 with the module names of torchvision (so state dicts load by name)."""
    if variant not in _CLASSES:
        raise ValueError(f"variant must be one of {sorted(_CLASSES)}, got {variant!r}")
    net = Inception3(num_classes=_CLASSES[variant], aux_logits=False, transform_input=False, init_weights=False)
    if variant == "fid":
        net.Mixed_5b = FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = FIDInceptionE(1280, pool="avg")
        net.Mixed_7c = FIDInceptionE(2048, pool="max")
    return net


def resolve_weights_path(weights_path: str | Path | None = None) -> Path:
    """The weights file from the argument, else from $CUT_INCEPTION_WEIGHTS; FileNotFoundError if neither."""
    chosen = weights_path if weights_path is not None else os.environ.get(WEIGHTS_ENV) or None
    if chosen is None:
        raise FileNotFoundError(f"no InceptionV3 weights given. {WEIGHTS_HELP}")
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"InceptionV3 weights file not found: {path}. {WEIGHTS_HELP}")
    return path


def _variant_of(state: dict[str, Tensor], path: Path) -> str:
    rows = state.get("fc.weight", torch.empty(0)).shape[:1]
    for variant, classes in _CLASSES.items():
        if tuple(rows) == (classes,):
            return variant
    raise ValueError(
        f"{path} is not an InceptionV3 state dict this code knows (fc.weight rows {tuple(rows)}, expected "
        f"1008 for {FID_WEIGHTS_NAME} or 1000 for torchvision's IMAGENET1K_V1). {WEIGHTS_HELP}"
    )


def _load_into_empty(build, variant: str, state: dict[str, Tensor], path: Path) -> Inception3:
    """Build on the meta device (no random init of 24M weights) and take the tensors of ``state``."""
    with torch.device("meta"):
        net = build(variant)
    missing, unexpected = net.load_state_dict(state, strict=False, assign=True)
    # Files saved by old PyTorch versions lack the (unused in eval) batch-norm step counters.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match InceptionV3 (missing {missing[:5]}, unexpected {unexpected[:5]}). "
            f"{WEIGHTS_HELP}"
        )
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d) and module.num_batches_tracked.is_meta:
            module.num_batches_tracked = torch.zeros((), dtype=torch.long)
    return net


class InceptionFeatureExtractor(nn.Module):
    """Images in [0, 1], (N, 3, H, W) -> InceptionV3 pool3 features (N, 2048), in eval mode, no grad."""

    def __init__(self, weights_path: str | Path | None = None) -> None:
        super().__init__()
        path = resolve_weights_path(weights_path)
        from cut_translation.checkpoint import torch_load

        state = torch_load(Path(path), flag="--inception-weights")
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state dict. {WEIGHTS_HELP}")
        self.variant = _variant_of(state, path)
        if self.variant == "torchvision":
            warnings.warn(
                "InceptionV3 with torchvision ImageNet weights: FID/KID values are not comparable to "
                f"published (pytorch-fid) numbers; use {FID_WEIGHTS_NAME} for those.",
                stacklevel=2,
            )
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        self.net = _load_into_empty(build_inception, self.variant, state, path)
        self.weights_path = path
        self.eval()
        for param in self.parameters():
            param.requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionFeatureExtractor:
        """Always stays in eval mode: batch-norm statistics are part of the metric."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        x = images.float()
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0
        net = self.net
        for layer in (
            net.Conv2d_1a_3x3,
            net.Conv2d_2a_3x3,
            net.Conv2d_2b_3x3,
            net.maxpool1,
            net.Conv2d_3b_1x1,
            net.Conv2d_4a_3x3,
            net.maxpool2,
            net.Mixed_5b,
            net.Mixed_5c,
            net.Mixed_5d,
            net.Mixed_6a,
            net.Mixed_6b,
            net.Mixed_6c,
            net.Mixed_6d,
            net.Mixed_6e,
            net.Mixed_7a,
            net.Mixed_7b,
            net.Mixed_7c,
        ):
            x = layer(x)
        return torch.flatten(net.avgpool(x), 1)


def load_feature_extractor(weights_path: str | Path, flag: str = "--inception-weights") -> InceptionFeatureExtractor:
    """:class:`InceptionFeatureExtractor` from a file the user named with ``flag``; a missing, truncated or
    foreign file is a one-line :class:`~ssl_shared.errors.UserError` naming the flag and the file."""
    try:
        return InceptionFeatureExtractor(weights_path)
    except (FileNotFoundError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise UserError(f"{flag} {weights_path}: {one_line(err)}") from err
