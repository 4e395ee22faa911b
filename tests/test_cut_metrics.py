"""Tests for cut_translation.metrics and cut_translation.inception against hand/closed-form references."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.inception import InceptionA

from cut_translation import inception, metrics

# ----------------------------------------------------------------------------------------------------
# L1 / PSNR / SSIM


def test_l1_and_psnr_by_hand() -> None:
    x = torch.zeros(2, 3, 8, 8)
    y = torch.full((2, 3, 8, 8), 0.1)
    y[1] = 0.2
    assert torch.allclose(metrics.l1(x, y), torch.tensor([0.1, 0.2], dtype=torch.float64))
    # MSE 0.01 on [0, 1] -> 10 log10(1 / 0.01) = 20 dB; on [-1, 1] (range 2): 10 log10(4 / 0.01)
    values = metrics.psnr(x, y, data_range=1.0)
    assert values[0].item() == pytest.approx(20.0)
    assert values[1].item() == pytest.approx(10 * math.log10(1 / 0.04))
    assert metrics.psnr(x[0], y[0], data_range=2.0).item() == pytest.approx(10 * math.log10(4 / 0.01))
    assert metrics.psnr(y, y, data_range=1.0).tolist() == [math.inf, math.inf]
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(x, y, data_range=0.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.l1(x, y[:, :, :4])


def test_ssim_identical_and_constant_images() -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(metrics.ssim(x, x, data_range=1.0), torch.ones(2, dtype=torch.float64))
    a, b = 0.3, 0.7
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)  # zero variances: the structure term is C2 / C2
    const_a = torch.full((1, 3, 12, 12), a, dtype=torch.float64)
    const_b = torch.full((1, 3, 12, 12), b, dtype=torch.float64)
    value = metrics.ssim(const_a, const_b, data_range=1.0)
    assert value.item() == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="smaller than the SSIM window"):
        metrics.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), data_range=1.0)


def test_ssim_against_explicit_loop() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((13, 14))
    y = np.clip(x + 0.2 * rng.standard_normal((13, 14)), 0, 1)
    window, sigma, big_l = 11, 1.5, 1.0
    c1, c2 = (0.01 * big_l) ** 2, (0.03 * big_l) ** 2
    offsets = np.arange(window) - window // 2
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for i in range(13 - window + 1):
        for j in range(14 - window + 1):
            px, py = x[i : i + window, j : j + window], y[i : i + window, j : j + window]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    got = metrics.ssim(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None], data_range=big_l)
    assert got.item() == pytest.approx(float(np.mean(values)), rel=1e-9)


def test_paired_metrics_tensors_and_folders(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(2)
    truth = torch.rand(3, 3, 16, 16, generator=gen) * 2 - 1  # [-1, 1] like the generator's output
    source = torch.rand(3, 3, 16, 16, generator=gen) * 2 - 1
    result = metrics.paired_metrics(truth.clone(), truth, source)
    assert result["n"] == 3 and result["l1"] == 0.0 and result["psnr"] == math.inf
    assert result["ssim"] == pytest.approx(1.0)
    unit_truth, unit_source = (truth + 1) / 2, (source + 1) / 2
    assert result["identity_l1"] == pytest.approx((unit_truth - unit_source).abs().mean().item(), rel=1e-6)
    mse = ((unit_truth - unit_source) ** 2).flatten(1).mean(1).double()
    assert result["identity_psnr"] == pytest.approx((10 * torch.log10(1 / mse)).mean().item(), rel=1e-6)

    # the same images as 8-bit PNG folders, matched by name
    def save(folder: str, images: torch.Tensor) -> np.ndarray:
        arrays = ((images + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        (tmp_path / folder).mkdir()
        for k, arr in enumerate(arrays):
            Image.fromarray(arr).save(tmp_path / folder / f"img{k}.png")
        return arrays

    truth_u8, source_u8 = save("testB", truth), save("testA", source)
    save("fake_B", truth)
    from_disk = metrics.paired_metrics(tmp_path / "fake_B", tmp_path / "testB", tmp_path / "testA")
    expected_l1 = np.abs(truth_u8 / 255.0 - source_u8 / 255.0).mean()
    assert from_disk["identity_l1"] == pytest.approx(expected_l1, rel=1e-9)
    assert from_disk["l1"] == 0.0
    (tmp_path / "testA" / "img2.png").unlink()
    with pytest.raises(FileNotFoundError, match="img2.png"):
        metrics.paired_metrics(tmp_path / "fake_B", tmp_path / "testB", tmp_path / "testA")


# ----------------------------------------------------------------------------------------------------
# Frechet distance and KID


def _reference_frechet(mu1, s1, mu2, s2) -> float:
    """Tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))), with symmetric eigen-decompositions."""
    e, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(np.clip(e, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_frechet_distance_closed_forms() -> None:
    # 1-D: (mu1 - mu2)^2 + s1 + s2 - 2 sqrt(s1 s2)
    got = metrics.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-0.5]), np.array([[9.0]]))
    assert got == pytest.approx(1.5**2 + 4 + 9 - 2 * 6)
    # diagonal covariances: the 1-D formula summed over dimensions
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.1, 0.5])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    expected = ((mu1 - mu2) ** 2 + s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_frechet_distance_general_matrices_and_fid() -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 6))
    b = rng.standard_normal((6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_reference_frechet(mu1, s1, mu2, s2), rel=1e-7)
    f1, f2 = rng.standard_normal((40, 5)), rng.standard_normal((30, 5)) * 2 + 1
    mean1, mean2 = f1.mean(0), f2.mean(0)
    cov1 = (f1 - mean1).T @ (f1 - mean1) / 39
    cov2 = (f2 - mean2).T @ (f2 - mean2) / 29
    assert metrics.fid_from_features(f1, f2) == pytest.approx(_reference_frechet(mean1, cov1, mean2, cov2), rel=1e-7)
    assert metrics.fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-6)
    # fewer samples than dimensions: singular covariances, still finite and close to the reference
    g1, g2 = rng.standard_normal((5, 8)), rng.standard_normal((6, 8))
    ref = _reference_frechet(g1.mean(0), np.cov(g1, rowvar=False), g2.mean(0), np.cov(g2, rowvar=False))
    assert metrics.fid_from_features(g1, g2) == pytest.approx(ref, rel=1e-4, abs=1e-4)
    with pytest.raises(ValueError, match="feature dimensions"):
        metrics.fid_from_features(f1, g1)


def _kid_double_loop(x: np.ndarray, y: np.ndarray) -> float:
    m, d = len(x), x.shape[1]

    def k(u, v):
        return (sum(ui * vi for ui, vi in zip(u, v)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    return xx + yy - 2 * xy


def test_kid_against_double_loop() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((7, 4)), rng.standard_normal((7, 4)) + 0.5
    # subsets as large as the sets are permutations of them: every subset gives the full-set value
    mean, std = metrics.kid_from_features(x, y, num_subsets=3, subset_size=100)
    assert mean == pytest.approx(_kid_double_loop(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)
    assert metrics.mmd2_unbiased(x[:5], y[:5]) == pytest.approx(_kid_double_loop(x[:5], y[:5]), rel=1e-10)
    # subsets of 4: the mean over subsets is the mean of the double loop over the drawn subsets
    mean4, std4 = metrics.kid_from_features(x, y, num_subsets=20, subset_size=4, seed=1)
    draws = np.random.default_rng(1)
    values = []
    for _ in range(20):
        ix, iy = draws.choice(7, 4, replace=False), draws.choice(7, 4, replace=False)
        values.append(_kid_double_loop(x[ix], y[iy]))
    assert mean4 == pytest.approx(np.mean(values), rel=1e-10) and std4 == pytest.approx(np.std(values), rel=1e-8)


def test_kid_separates_distributions() -> None:
    rng = np.random.default_rng(6)
    same = metrics.kid_from_features(rng.standard_normal((200, 8)), rng.standard_normal((200, 8)), 20, 100)
    shifted = metrics.kid_from_features(rng.standard_normal((200, 8)), rng.standard_normal((200, 8)) + 1, 20, 100)
    assert abs(same[0]) < 3 * same[1] + 1e-3  # unbiased: around zero for one distribution
    assert shifted[0] > 10 * max(same[1], 1e-3)


class _ChannelStats(torch.nn.Module):
    """A tiny stand-in feature extractor: per-channel mean and max (6 features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


def test_fid_kid_glue_on_folders_and_tensors(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(7)
    real = torch.rand(12, 3, 8, 8, generator=gen)
    fake = torch.rand(10, 3, 8, 8, generator=gen) * 0.5
    (tmp_path / "fake").mkdir()
    for k, image in enumerate(fake):
        arr = (image * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(tmp_path / "fake" / f"f{k:02d}.png")
    fake_u8 = torch.stack(
        [
            torch.from_numpy(
                np.asarray(Image.open(tmp_path / "fake" / f"f{k:02d}.png"), dtype=np.float64) / 255
            ).permute(2, 0, 1)
            for k in range(10)
        ]
    )
    stats = _ChannelStats()
    f_real, f_fake = stats(real.double()).numpy(), stats(fake_u8).numpy()
    result = metrics.fid_kid(real, tmp_path / "fake", batch_size=4, kid_subset_size=8, extractor=stats)
    assert result["n_real"] == 12 and result["n_fake"] == 10 and result["fid_rank_deficient"] is False
    assert result["fid"] == pytest.approx(metrics.fid_from_features(f_real, f_fake), rel=1e-5)
    kid_mean, kid_std = metrics.kid_from_features(f_real, f_fake, subset_size=8)
    assert result["kid"] == pytest.approx(kid_mean, rel=1e-4, abs=1e-7)
    assert result["kid_std"] == pytest.approx(kid_std, rel=1e-3, abs=1e-7)


# ----------------------------------------------------------------------------------------------------
# Inception features


def test_inception_without_weights_explains_where_to_get_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as info:
        inception.InceptionFeatureExtractor()
    message = str(info.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message and "pytorch-fid" in message
    assert "CUT_INCEPTION_WEIGHTS" in message and "IMAGENET1K_V1" in message
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        metrics.fid_kid(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(10, 2048)}, bad)
    with pytest.raises(ValueError, match="fc.weight rows"):
        inception.InceptionFeatureExtractor(bad)


def test_inception_forward_with_random_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "random_fid_inception.pth"
    torch.save(inception.build_inception("fid").state_dict(), weights)
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(weights))
    extractor = inception.InceptionFeatureExtractor()
    assert extractor.variant == "fid" and not extractor.training
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = metrics.extract_features(extractor, images, batch_size=2)
    assert features.shape == (2, 2048) and np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])


def test_fid_blocks_pool_without_padding() -> None:
    torch.manual_seed(1)
    plain = InceptionA(192, pool_features=32).eval()
    fid = inception.FIDInceptionA(192, pool_features=32).eval()
    fid.load_state_dict(plain.state_dict())
    x = torch.rand(1, 192, 7, 7)
    with torch.no_grad():
        a, b = plain(x), fid(x)
    # only the pool branch (last 32 channels) differs, and only at the border where padding enters
    assert torch.allclose(a[:, :-32], b[:, :-32])
    assert torch.allclose(a[:, -32:, 1:-1, 1:-1], b[:, -32:, 1:-1, 1:-1], atol=1e-6)
    assert not torch.allclose(a[:, -32:, 0], b[:, -32:, 0])
