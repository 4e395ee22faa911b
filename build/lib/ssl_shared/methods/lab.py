"""CIE Lab colour space (D65 white) and the quantised ``ab`` gamut of Zhang et al. 2016.

sRGB in ``[0, 1]`` -> linear RGB -> XYZ -> Lab:

    lin = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055)^2.4
    [X Y Z] = M_sRGB->XYZ lin / (0.95047, 1, 1.08883)
    f(t) = t^(1/3) if t > (6/29)^3 else t / (3 (6/29)^2) + 4/29
    L = 116 f(Y) - 16,  a = 500 (f(X) - f(Y)),  b = 200 (f(Y) - f(Z))

The ``ab`` plane is cut into a ``grid`` x ``grid`` unit grid (Zhang: 10); the bins kept are those
whose centre is the nearest centre of at least one sRGB colour ("in gamut"). Zhang count 313 bins
(their gamut also covers colours outside sRGB); a 48^3 sampling of the sRGB cube gives 261.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])
_DELTA = 6.0 / 29.0


def _check_rgb(rgb: Tensor) -> None:
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected RGB images of shape (B, 3, H, W), got {tuple(rgb.shape)}")


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """``(B, 3, H, W)`` sRGB in ``[0, 1]`` -> ``(B, 3, H, W)`` Lab (L in [0, 100], a/b about [-110, 110])."""
    _check_rgb(rgb)
    with torch.autocast(rgb.device.type, enabled=False):  # bin edges need float32, also under bf16 autocast
        return _rgb_to_lab_float32(rgb.float().clamp(0.0, 1.0))


def _rgb_to_lab_float32(rgb: Tensor) -> Tensor:
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).pow(2.4))
    matrix, white = _RGB_TO_XYZ.to(rgb.device), _WHITE.to(rgb.device)
    xyz = torch.einsum("ij,bjhw->bihw", matrix, lin) / white.view(1, 3, 1, 1)
    f = torch.where(xyz > _DELTA**3, xyz.clamp_min(1e-12).pow(1.0 / 3.0), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    lightness = 116.0 * f[:, 1] - 16.0
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return torch.stack([lightness, a, b], dim=1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_lab` (out-of-gamut results are clamped to ``[0, 1]``)."""
    _check_rgb(lab)
    fy = (lab[:, 0] + 16.0) / 116.0
    f = torch.stack([fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0], dim=1)
    xyz = torch.where(f > _DELTA, f.pow(3), 3 * _DELTA**2 * (f - 4.0 / 29.0)) * _WHITE.to(lab.device).view(1, 3, 1, 1)
    lin = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_XYZ).to(lab.device), xyz).clamp(0.0, 1.0)
    rgb = torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp_min(1e-12).pow(1.0 / 2.4) - 0.055)
    return rgb.clamp(0.0, 1.0)


def lightness_input(rgb: Tensor, channels: int) -> Tensor:
    """``L / 100`` of RGB images, repeated to ``channels`` channels (a grey image for the backbone)."""
    return (rgb_to_lab(rgb)[:, :1] / 100.0).expand(-1, channels, -1, -1).contiguous()


class ABQuantizer(nn.Module):
    """Quantised in-gamut ``ab`` bins: centres, hard and soft encodings.

    ``centers``: ``(Q, 2)`` bin centres (multiples of ``grid``). ``encode_hard(ab)`` gives the index of
    the nearest centre per pixel; ``encode_soft(ab)`` Zhang's soft encoding: the ``neighbors`` nearest
    centres weighted by a Gaussian of width ``sigma`` (Zhang: 5 neighbours, sigma 5), normalised.
    """

    def __init__(self, grid: float = 10.0, samples_per_axis: int = 48) -> None:
        super().__init__()
        if grid <= 0 or samples_per_axis < 2:
            raise ValueError(f"need grid > 0 and samples_per_axis >= 2, got {grid}, {samples_per_axis}")
        self.grid = float(grid)
        axis = torch.linspace(0.0, 1.0, samples_per_axis)
        cube = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=0).reshape(1, 3, -1, 1)
        ab = rgb_to_lab(cube)[0, 1:, :, 0].T  # (N, 2)
        cells = torch.unique(torch.round(ab / self.grid), dim=0)
        self.register_buffer("centers", cells * self.grid)

    @property
    def num_bins(self) -> int:
        return int(self.centers.shape[0])

    def _sq_distances(self, ab: Tensor) -> Tensor:
        if ab.ndim != 4 or ab.shape[1] != 2:
            raise ValueError(f"ab must have shape (B, 2, H, W), got {tuple(ab.shape)}")
        flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
        with torch.autocast(flat.device.type, enabled=False):
            return torch.cdist(flat, self.centers.float()).pow(2)

    def encode_hard(self, ab: Tensor) -> Tensor:
        """``(B, 2, H, W)`` -> ``(B, H, W)`` long indices of the nearest in-gamut centre."""
        b, _, h, w = ab.shape
        return self._sq_distances(ab).argmin(dim=1).view(b, h, w)

    def encode_soft(self, ab: Tensor, neighbors: int = 5, sigma: float = 5.0) -> Tensor:
        """``(B, 2, H, W)`` -> ``(B, Q, H, W)`` target distributions (rows sum to 1)."""
        b, _, h, w = ab.shape
        d2 = self._sq_distances(ab)
        k = min(neighbors, self.num_bins)
        near_d2, near_idx = d2.topk(k, dim=1, largest=False)
        weights = torch.softmax(-near_d2 / (2 * sigma**2), dim=1)
        soft = torch.zeros_like(d2).scatter_(1, near_idx, weights)
        return soft.view(b, h, w, -1).permute(0, 3, 1, 2)

    def gaussian_smooth(self, distribution: Tensor, sigma: float) -> Tensor:
        """Smooth a ``(Q,)`` distribution over the bins with a Gaussian kernel in ``ab`` (renormalised)."""
        d2 = torch.cdist(self.centers, self.centers).pow(2)
        kernel = torch.exp(-d2 / (2 * sigma**2))
        smoothed = kernel @ distribution
        return smoothed / smoothed.sum()


def rebalancing_weights(smoothed_prior: Tensor, mix: float) -> Tensor:
    """Zhang et al. 2016 eq. 4: ``w ∝ ((1 - lambda) p~ + lambda / Q)^-1`` with ``E_p~[w] = 1``."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"rebalancing mix lambda must be in [0, 1], got {mix}")
    q = smoothed_prior.numel()
    w = 1.0 / ((1 - mix) * smoothed_prior + mix / q)
    return w / (smoothed_prior * w).sum()
