"""Image translation metrics: paired L1 / PSNR / SSIM, and FID / KID on InceptionV3 features.

Paired metrics compare a translation G(A) with the ground-truth B image (``dmc-restyle`` test pairs) and
report the identity baseline (A itself vs B) beside them: a model is useful only if it beats it.
All paired metrics are computed on images in [0, 1] (data_range 1), averaged over images.

FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) compare feature distributions of two image
sets; features come from ``cut_translation.inception.InceptionFeatureExtractor`` (weights supplied by
the user, see that module). With fewer images than feature dimensions (2048) the FID covariances are
rank-deficient and FID is biased upwards; KID is unbiased and better suited to small test sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import Tensor

from cut_translation.data import list_images, load_rgb

# ----------------------------------------------------------------------------------------------------
# Paired metrics (per image; inputs (N, C, H, W) or (C, H, W))


def _as_batch(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape:
        raise ValueError(f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim == 3:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) or (C, H, W) images, got shape {tuple(x.shape)}")
    return x.double(), y.double()


def _check_range(data_range: float) -> None:
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0 (2.0 for images in [-1, 1], 1.0 for [0, 1]), got {data_range}")


def l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute difference per image: mean |x - y| over C, H, W. Returns shape (N,)."""
    x, y = _as_batch(x, y)
    return (x - y).abs().flatten(1).mean(dim=1)


def psnr(x: Tensor, y: Tensor, data_range: float) -> Tensor:
    """Peak signal-to-noise ratio per image: 10 log10(data_range^2 / MSE), +inf where MSE = 0. Shape (N,).

    ``data_range`` is the span of possible values: 2.0 for images in [-1, 1], 1.0 for [0, 1].
    """
    _check_range(data_range)
    x, y = _as_batch(x, y)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)  # mse = 0 -> +inf


def gaussian_window(size: int, sigma: float) -> Tensor:
    """Normalised 1-D gaussian of ``size`` taps, standard deviation ``sigma`` (float64)."""
    if size < 1 or size % 2 == 0 or sigma <= 0:
        raise ValueError(f"window must be an odd size >= 1 and sigma > 0, got size={size}, sigma={sigma}")
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: Tensor,
    y: Tensor,
    data_range: float,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Structural similarity per image (Wang et al. 2004), mean over channels and valid positions.

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
    C1 = (k1 L)^2, C2 = (k2 L)^2, L = data_range; local statistics under a ``window`` x ``window``
    gaussian (``sigma``), evaluated where the window fits inside the image ('valid', as in the paper's
    reference code). SSIM is not shift-invariant: compare images in the same range. Shape (N,).
    """
    _check_range(data_range)
    x, y = _as_batch(x, y)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images of size {tuple(x.shape[-2:])} are smaller than the SSIM window {window}")
    c = x.shape[1]
    g = gaussian_window(window, sigma)
    rows = g.view(1, 1, 1, window).expand(c, 1, 1, window).contiguous()
    cols = g.view(1, 1, window, 1).expand(c, 1, window, 1).contiguous()

    def blur(t: Tensor) -> Tensor:  # the 2-D gaussian is separable: filter rows, then columns
        return F.conv2d(F.conv2d(t, rows, groups=c), cols, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


ImagesLike = Tensor | str | Path


def load_unit_image(path: str | Path) -> Tensor:
    """An image file as float64 RGB (3, H, W) with values v / 255 in [0, 1]."""
    return torch.from_numpy(np.asarray(load_rgb(path), dtype=np.float64) / 255.0).permute(2, 0, 1)


def load_image_folder(folder: str | Path, names: Sequence[str] | None = None) -> tuple[Tensor, list[str]]:
    """All images of ``folder`` (or the given file names) as a float64 tensor (N, 3, H, W) in [0, 1]."""
    folder = Path(folder)
    paths = [folder / n for n in names] if names is not None else list_images(folder)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {len(missing)} expected image(s), e.g. {missing[:5]}")
    if not paths:
        raise ValueError(f"no images in {folder}")
    images = [load_unit_image(p) for p in paths]
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) != 1:
        raise ValueError(f"images in {folder} have different sizes {sorted(shapes)[:3]}; resize them first")
    return torch.stack(images), [p.name for p in paths]


def _to_unit_range(images: ImagesLike, value_range: tuple[float, float], names: Sequence[str] | None) -> Tensor:
    if isinstance(images, (str, Path)):
        return load_image_folder(images, names)[0].double()
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return ((images.detach().double().cpu() - low) / (high - low)).clamp(0.0, 1.0)


def paired_metrics(
    prediction: ImagesLike,
    truth: ImagesLike,
    inputs: ImagesLike,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> dict[str, float]:
    """L1, PSNR, SSIM of ``prediction`` vs ``truth`` and of the identity baseline ``inputs`` vs ``truth``.

    Each argument is a tensor (N, 3, H, W) with values in ``value_range`` (the generator's [-1, 1] by
    default; rows in the sorted file-name order of any folder given) or a folder of images. Folders are
    matched by file name to the first folder given (``fake_B/x.png`` with ``testB/x.png`` and
    ``testA/x.png``). Everything is compared in [0, 1]; per-image values are averaged (PSNR of an exact
    match is +inf and makes the mean +inf).
    Returns ``{"l1", "psnr", "ssim", "identity_l1", "identity_psnr", "identity_ssim", "n"}``.
    """
    names = None
    for candidate in (prediction, truth, inputs):
        if isinstance(candidate, (str, Path)):
            names = [p.name for p in list_images(candidate)]
            break
    pred = _to_unit_range(prediction, value_range, names)
    true = _to_unit_range(truth, value_range, names)
    source = _to_unit_range(inputs, value_range, names)
    if not (pred.shape == true.shape == source.shape):
        raise ValueError(
            f"prediction, truth and inputs differ in shape: {tuple(pred.shape)}, {tuple(true.shape)}, "
            f"{tuple(source.shape)}"
        )
    result: dict[str, float] = {"n": float(pred.shape[0])}
    for prefix, images in (("", pred), ("identity_", source)):
        result[f"{prefix}l1"] = l1(images, true).mean().item()
        result[f"{prefix}psnr"] = psnr(images, true, data_range=1.0).mean().item()
        result[f"{prefix}ssim"] = ssim(images, true, data_range=1.0).mean().item()
    return result


# ----------------------------------------------------------------------------------------------------
# FID and KID


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance of two gaussians: ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)).

    If the matrix square root is not finite (singular product), ``eps`` is added to both diagonals.
    A square root with a non-negligible imaginary part (max |imag| > 1e-3) raises ValueError;
    otherwise the real part is used.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"need means (d,) and covariances (d, d) of one d; got {mu1.shape}, {sigma1.shape}, "
            f"{mu2.shape}, {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"matrix square root has imaginary part {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _features(f: np.ndarray | Tensor, name: str, min_rows: int = 2) -> np.ndarray:
    arr = f.detach().cpu().numpy() if isinstance(f, Tensor) else np.asarray(f)
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[0] < min_rows:
        raise ValueError(f"{name} must be (N, D) features with N >= {min_rows}, got shape {arr.shape}")
    return arr


def fid_from_features(f1: np.ndarray | Tensor, f2: np.ndarray | Tensor) -> float:
    """FID between two feature sets (N, D): Frechet distance of their means and sample covariances."""
    a, b = _features(f1, "f1"), _features(f2, "f2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID kernel k(x, y) = (x . y / d + 1)^3 for all row pairs, d the feature dimension."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples (m rows each) under ``polynomial_kernel``:

    sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1)) - 2 sum_{i,j} k(x_i, y_j) / m^2
    """
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / m**2)


def kid_from_features(
    f1: np.ndarray | Tensor,
    f2: np.ndarray | Tensor,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): mean and std of ``mmd2_unbiased`` over random subsets.

    Each of ``num_subsets`` rounds draws ``min(subset_size, N1, N2)`` rows without replacement from each
    set (numpy generator seeded with ``seed``). Returns ``(mean, std)``.
    """
    a, b = _features(f1, "f1"), _features(f2, "f2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if num_subsets < 1 or subset_size < 2:
        raise ValueError(f"need num_subsets >= 1 and subset_size >= 2, got {num_subsets}, {subset_size}")
    m = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(a[rng.choice(a.shape[0], m, replace=False)], b[rng.choice(b.shape[0], m, replace=False)])
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def extract_features(
    extractor: torch.nn.Module, images: Tensor | str | Path, batch_size: int = 50, device: str = "cpu"
) -> np.ndarray:
    """Features (N, D) of a folder of images or a tensor (N, 3, H, W) in [0, 1], ``batch_size`` at a time.

    Folder images of different sizes are passed one by one (the Inception extractor resizes each).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(images, (str, Path)):
        paths = list_images(images)
        if not paths:
            raise ValueError(f"no images in {images}")
        n = len(paths)
    else:
        paths, n = None, images.shape[0]
    extractor = extractor.to(device)
    chunks = []
    for start in range(0, n, batch_size):
        if paths is None:
            batches = [images[start : start + batch_size]]
        else:
            loaded = [load_unit_image(p).float() for p in paths[start : start + batch_size]]
            same_size = len({t.shape for t in loaded}) == 1
            batches = [torch.stack(loaded)] if same_size else [t[None] for t in loaded]
        for batch in batches:
            chunks.append(extractor(batch.to(device)).double().cpu().numpy())
    return np.concatenate(chunks)


def fid_kid(
    real: Tensor | str | Path,
    fake: Tensor | str | Path,
    weights_path: str | Path | None = None,
    batch_size: int = 50,
    device: str = "cpu",
    kid_subset_size: int = 1000,
    extractor: torch.nn.Module | None = None,
) -> dict[str, float | int | bool | str]:
    """FID and KID between two image sets (folders, or tensors in [0, 1]).

    Features come from ``extractor`` if given, else from ``InceptionFeatureExtractor(weights_path)``
    (``weights_path`` or $CUT_INCEPTION_WEIGHTS; without either a FileNotFoundError explains where the
    file comes from). The reference protocol uses the test split of the target domain as ``real`` and
    the translated test inputs as ``fake``.
    """
    if extractor is None:
        from cut_translation.inception import InceptionFeatureExtractor

        extractor = InceptionFeatureExtractor(weights_path)
    f_real = extract_features(extractor, real, batch_size, device)
    f_fake = extract_features(extractor, fake, batch_size, device)
    kid_mean, kid_std = kid_from_features(f_real, f_fake, subset_size=kid_subset_size)
    return {
        "fid": fid_from_features(f_real, f_fake),
        "kid": kid_mean,
        "kid_std": kid_std,
        "n_real": len(f_real),
        "n_fake": len(f_fake),
        # FID covariances are rank-deficient (and FID biased upwards) with N <= feature dimension
        "fid_rank_deficient": min(len(f_real), len(f_fake)) <= f_real.shape[1],
        "inception_variant": getattr(extractor, "variant", type(extractor).__name__),
    }
