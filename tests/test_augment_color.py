"""Colour ops, filters, occlusion, noise and random conv of ssl_shared.augment against hand computations,
explicit loops and torchvision's per-image functional ops."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from ssl_shared.augment import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    cutout,
    gaussian_blur,
    gaussian_noise,
    hsv_to_rgb,
    random_conv,
    random_erasing,
    random_grayscale,
    rgb_to_grayscale,
    rgb_to_hsv,
    sobel,
    solarize,
)

ADJUST = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def _images(shape: tuple[int, ...], dtype: torch.dtype = torch.uint8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255.0


def test_grayscale_uses_bt601_weights_by_hand() -> None:
    x = torch.tensor([200, 100, 50], dtype=torch.uint8).view(1, 3, 1, 1).repeat(1, 2, 2, 2)
    # 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 59.8 + 58.7 + 5.7 = 124.2
    assert torch.equal(rgb_to_grayscale(x), torch.full((1, 6, 2, 2), 124, dtype=torch.uint8))
    xf = x.float() / 255.0
    torch.testing.assert_close(rgb_to_grayscale(xf), torch.full((1, 6, 2, 2), 124.2 / 255.0))


def test_random_grayscale_changes_exactly_the_flagged_samples() -> None:
    x = _images((32, 6, 4, 4))
    out, p = random_grayscale(x, 0.5, generator=torch.Generator().manual_seed(0), return_params=True)
    gray = p["gray"]
    assert 0 < int(gray.sum()) < 32
    assert torch.equal(out[~gray], x[~gray]) and torch.equal(out[gray], rgb_to_grayscale(x)[gray])
    frames = out[gray].view(-1, 2, 3, 4, 4)
    assert torch.equal(frames[:, :, 0], frames[:, :, 1]) and torch.equal(frames[:, :, 1], frames[:, :, 2])


def test_brightness_contrast_saturation_formulas_by_hand() -> None:
    frames = torch.tensor([[0.2, 0.4, 0.6], [1.0, 0.0, 0.5]]).view(1, 1, 3, 1, 2)  # one frame, 2 pixels
    f = torch.tensor([1.5])
    expected_b = (frames * 1.5).clamp(0, 1)
    torch.testing.assert_close(adjust_brightness(frames, f, 1.0), expected_b)
    y = 0.299 * frames[:, :, 0] + 0.587 * frames[:, :, 1] + 0.114 * frames[:, :, 2]  # (1, 1, 1, 2)
    expected_c = (1.5 * frames + (1 - 1.5) * y.mean()).clamp(0, 1)
    torch.testing.assert_close(adjust_contrast(frames, f, 1.0), expected_c)
    expected_s = (1.5 * frames + (1 - 1.5) * y.unsqueeze(2)).clamp(0, 1)
    torch.testing.assert_close(adjust_saturation(frames, f, 1.0), expected_s)


@pytest.mark.parametrize(
    ("adjust", "reference", "factors"),
    [
        (adjust_brightness, TF.adjust_brightness, (0.3, 1.0, 1.7)),
        (adjust_contrast, TF.adjust_contrast, (0.2, 1.0, 1.8)),
        (adjust_saturation, TF.adjust_saturation, (0.0, 0.6, 1.9)),
        (adjust_hue, TF.adjust_hue, (-0.45, 0.1, 0.3)),
    ],
)
def test_adjustments_match_torchvision_per_frame(adjust, reference, factors) -> None:
    x = _images((3, 6, 8, 8), torch.float32)  # two RGB frames a sample
    out = adjust(x.view(3, 2, 3, 8, 8), torch.tensor(factors), 1.0).view(3, 6, 8, 8)
    for i, factor in enumerate(factors):
        for frame in range(2):
            channels = slice(3 * frame, 3 * frame + 3)
            # torchvision's tensor grayscale weighs red 0.2989 instead of BT.601's 0.299: allow 1e-4.
            torch.testing.assert_close(out[i, channels], reference(x[i, channels], factor), atol=1e-4, rtol=0)


def test_hsv_conversion_matches_colorsys() -> None:
    x = _images((1, 3, 4, 4), torch.float64)
    hue, sat, val = rgb_to_hsv(x.view(1, 1, 3, 4, 4))
    for row in range(4):
        for col in range(4):
            h, s, v = colorsys.rgb_to_hsv(*x[0, :, row, col].tolist())
            assert math.isclose(float(hue[0, 0, row, col]), h, abs_tol=1e-9)
            assert math.isclose(float(sat[0, 0, row, col]), s, abs_tol=1e-9)
            assert math.isclose(float(val[0, 0, row, col]), v, abs_tol=1e-9)
    torch.testing.assert_close(hsv_to_rgb(hue, sat, val), x.view(1, 1, 3, 4, 4))


@pytest.mark.parametrize("random_order", [False, True])
def test_color_jitter_composes_the_adjustments_in_the_returned_order(random_order: bool) -> None:
    x = _images((12, 6, 5, 5), torch.float32)
    out, p = color_jitter(
        x, 0.5, 0.5, 0.5, 0.3, random_order=random_order, generator=torch.Generator().manual_seed(0), return_params=True
    )
    names = ("brightness", "contrast", "saturation", "hue")
    for i in range(12):  # explicit loop over samples
        y = x[i : i + 1].view(1, 2, 3, 5, 5)
        for op_index in p["order"][i].tolist():
            y = ADJUST[op_index](y, p[names[op_index]][i : i + 1], 1.0)
        torch.testing.assert_close(out[i], y.view(6, 5, 5), atol=1e-5, rtol=0)
    if random_order:
        assert len({tuple(row) for row in p["order"].tolist()}) > 1
    else:
        assert torch.equal(p["order"], torch.arange(4).expand(12, 4))


def test_color_jitter_factors_lie_in_their_ranges() -> None:
    x = _images((200, 3, 2, 2))
    _, p = color_jitter(x, 0.4, (0.5, 0.9), 2.0, 0.1, generator=torch.Generator().manual_seed(0), return_params=True)
    assert torch.all((p["brightness"] >= 0.6) & (p["brightness"] <= 1.4))
    assert torch.all((p["contrast"] >= 0.5) & (p["contrast"] <= 0.9))
    assert torch.all((p["saturation"] >= 0.0) & (p["saturation"] <= 3.0))
    assert torch.all(p["hue"].abs() <= 0.1)
    assert torch.equal(p["order"].sort(dim=1).values, torch.arange(4).expand(200, 4))


def test_color_jitter_keeps_uint8_and_is_identity_at_zero_strength() -> None:
    x = _images((8, 9, 6, 6))
    out = color_jitter(x, 1.0, 1.0, 1.0, 0.5, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert not torch.equal(out, x)
    assert torch.equal(color_jitter(x, 0.0, 0.0, 0.0, 0.0), x)
    xf = x.float()
    assert torch.equal(color_jitter(xf, 0.0, 0.0, 0.0, 0.0, max_value=255.0), xf)
    out_f = color_jitter(xf, max_value=255.0, generator=torch.Generator().manual_seed(0))
    assert out_f.min() >= 0 and out_f.max() <= 255 and out_f.dtype == torch.float32
    assert torch.equal(xf, x.float())  # input untouched


def test_color_jitter_on_grayscale_stacks_uses_brightness_and_contrast_only() -> None:
    x = _images((4, 4, 5, 5), torch.float32)  # four grayscale frames
    out, p = color_jitter(
        x, 0.5, 0.5, 0.5, 0.5, random_order=False, channels_per_frame=1, generator=torch.Generator(), return_params=True
    )
    b = p["brightness"].view(4, 1, 1, 1)
    c = p["contrast"].view(4, 1, 1, 1)
    bright = (x * b).clamp(0, 1)
    expected = (c * bright + (1 - c) * bright.mean(dim=(2, 3), keepdim=True)).clamp(0, 1)
    torch.testing.assert_close(out, expected)


def test_solarize_threshold_by_hand() -> None:
    x = torch.tensor([0, 100, 127, 128, 200, 255], dtype=torch.uint8).view(1, 1, 1, 6)
    expected = torch.tensor([0, 100, 127, 127, 55, 0], dtype=torch.uint8).view(1, 1, 1, 6)
    assert torch.equal(solarize(x), expected)
    xf = torch.tensor([0.1, 0.49, 0.5, 0.9]).view(1, 1, 1, 4)
    torch.testing.assert_close(solarize(xf), torch.tensor([0.1, 0.49, 0.5, 0.1]).view(1, 1, 1, 4))
    torch.testing.assert_close(
        solarize(xf * 255, 0.8, max_value=255.0), torch.tensor([0.1, 0.49, 0.5, 0.1]).view(1, 1, 1, 4) * 255
    )


def test_gaussian_blur_keeps_a_constant_image() -> None:
    x = torch.full((4, 6, 10, 10), 0.37)
    torch.testing.assert_close(gaussian_blur(x, 5, (0.1, 3.0), generator=torch.Generator()), x)
    xu = torch.full((2, 3, 10, 10), 200, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(xu, 7), xu)


def test_gaussian_blur_matches_a_hand_built_separable_kernel() -> None:
    x = _images((3, 6, 9, 9), torch.float64)
    out, p = gaussian_blur(x, 5, (0.5, 2.0), generator=torch.Generator().manual_seed(0), return_params=True)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(3):
        sigma = float(p["sigma"][i])
        taps = [math.exp(-(t**2) / (2 * sigma**2)) for t in (-2, -1, 0, 1, 2)]
        k1 = torch.tensor(taps, dtype=torch.float64) / sum(taps)
        k2 = torch.outer(k1, k1).expand(6, 1, 5, 5)
        expected = F.conv2d(padded[i : i + 1], k2, groups=6)[0]
        torch.testing.assert_close(out[i], expected)
    assert len(set(p["sigma"].tolist())) == 3 and torch.all((p["sigma"] >= 0.5) & (p["sigma"] <= 2.0))


def test_sobel_on_a_step_image() -> None:
    x = torch.zeros(1, 6, 6, 8, dtype=torch.uint8)
    x[:, :3, :, 4:] = 255  # frame 0: vertical step between columns 3 and 4
    x[:, 3:, 3:, :] = 255  # frame 1: horizontal step between rows 2 and 3
    out = sobel(x)
    expected = torch.zeros(1, 6, 6, 8, dtype=torch.uint8)
    expected[:, :3, :, 3:5] = 255  # |Gx| / 4 = (1 + 2 + 1) * 255 / 4 next to the step
    expected[:, 3:, 2:4, :] = 255
    assert torch.equal(out, expected)
    flat = torch.full((2, 3, 5, 5), 0.3)
    assert torch.equal(sobel(flat), torch.zeros_like(flat))


def test_gaussian_noise_scale_dtype_and_identity() -> None:
    x = torch.full((4, 3, 64, 64), 0.5)
    out, p = gaussian_noise(x, (0.05, 0.1), generator=torch.Generator().manual_seed(0), return_params=True)
    measured = (out - x).flatten(1).std(dim=1)
    torch.testing.assert_close(measured, p["std"], rtol=0.05, atol=0)
    xu = _images((2, 3, 8, 8))
    assert torch.equal(gaussian_noise(xu, 0.0), xu)
    noisy = gaussian_noise(xu, 0.5, generator=torch.Generator())
    assert noisy.dtype == torch.uint8 and not torch.equal(noisy, xu)


def _box_reference(x: torch.Tensor, boxes: list[tuple[int, int, int, int]], fill: float) -> torch.Tensor:
    expected = x.clone()
    for i, (top, left, height, width) in enumerate(boxes):
        rows = slice(max(top, 0), max(top + height, 0))
        cols = slice(max(left, 0), max(left + width, 0))
        expected[i, :, rows, cols] = fill
    return expected


def test_cutout_fills_the_clipped_square() -> None:
    x = _images((16, 6, 10, 10))
    out, p = cutout(x, 4, fill=7, generator=torch.Generator().manual_seed(0), return_params=True)
    boxes = [(int(t), int(l), 4, 4) for t, l in zip(p["top"], p["left"])]
    assert torch.equal(out, _box_reference(x, boxes, 7))
    assert int(p["top"].min()) < 0 or int(p["left"].min()) < 0  # some boxes hang over the border


def test_random_erasing_fills_the_returned_box_of_erased_samples() -> None:
    x = _images((32, 3, 12, 12), torch.float32)
    out, p = random_erasing(x, 0.5, generator=torch.Generator().manual_seed(0), return_params=True)
    boxes = [
        (int(t), int(l), int(h), int(w)) if e else (0, 0, 0, 0)
        for t, l, h, w, e in zip(p["top"], p["left"], p["height"], p["width"], p["erased"])
    ]
    assert torch.equal(out, _box_reference(x, boxes, 0.0))
    assert 0 < int(p["erased"].sum()) < 32
    area = (p["height"] * p["width"])[p["erased"]].float() / 144
    assert torch.all(area >= 0.01) and torch.all(area <= 0.4)
    assert torch.equal(random_erasing(x, 0.0), x)


def test_random_conv_is_one_clamped_conv_per_frame() -> None:
    x = _images((3, 6, 8, 8), torch.float32)
    out, p = random_conv(x, generator=torch.Generator().manual_seed(0), return_params=True)
    weight = p["weight"]
    assert weight.shape == (3, 3, 3, 3)
    for frame in range(2):
        channels = slice(3 * frame, 3 * frame + 3)
        expected = F.conv2d(x[:, channels], weight, padding=1).clamp(0, 1)
        torch.testing.assert_close(out[:, channels], expected)
    xu = _images((3, 9, 8, 8))
    outu = random_conv(xu, generator=torch.Generator().manual_seed(1))
    assert outu.dtype == torch.uint8 and outu.shape == xu.shape and not torch.equal(outu, xu)


@pytest.mark.parametrize(
    "op",
    [
        lambda x, g: color_jitter(x, 0.5, 0.5, 0.5, 0.2, generator=g),
        lambda x, g: random_grayscale(x, 0.5, generator=g),
        lambda x, g: gaussian_blur(x, 3, generator=g),
        lambda x, g: cutout(x, 4, generator=g),
        lambda x, g: random_erasing(x, generator=g),
        lambda x, g: random_conv(x, generator=g),
        lambda x, g: solarize(x),
        lambda x, g: sobel(x),
    ],
)
def test_colour_params_are_shared_by_the_frames_of_a_sample(op) -> None:
    x = _images((10, 9, 8, 8))
    out = op(x, torch.Generator().manual_seed(2))
    for frame in range(3):
        channels = slice(3 * frame, 3 * frame + 3)
        alone = op(x[:, channels].contiguous(), torch.Generator().manual_seed(2))
        assert torch.equal(out[:, channels], alone)


def test_colour_ops_reject_bad_input() -> None:
    x = _images((2, 4, 6, 6))
    with pytest.raises(ValueError, match="C=4 channels cannot be split"):
        color_jitter(x)
    y = _images((2, 3, 6, 6))
    with pytest.raises(ValueError, match="hue strength must be in \\[0, 0.5\\], got 0.7"):
        color_jitter(y, hue=0.7)
    with pytest.raises(ValueError, match="brightness strength must be >= 0, got -1"):
        color_jitter(y, brightness=-1)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd int, got 4"):
        gaussian_blur(y, 4)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gaussian_blur(y, 3, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        solarize(y, 1.5)
    with pytest.raises(ValueError, match="uint8 images have max_value 255"):
        gaussian_noise(y, max_value=1.0)
    with pytest.raises(ValueError, match="fill for uint8"):
        cutout(y, 2, fill=300)
    with pytest.raises(ValueError, match="channels_per_frame must be 1"):
        random_conv(y, channels_per_frame=2)


@pytest.mark.parametrize(
    "op",
    [
        lambda x, g: color_jitter(x, 1.0, 1.0, 1.0, 0.5, generator=g),
        lambda x, g: random_grayscale(x, 0.5, generator=g),
        lambda x, g: gaussian_blur(x, 3, generator=g),
        lambda x, g: gaussian_noise(x, 0.3, generator=g),
        lambda x, g: random_conv(x, generator=g),
        lambda x, g: solarize(x),
        lambda x, g: sobel(x),
    ],
)
def test_colour_ops_keep_dtype_and_value_range(op) -> None:
    xu = _images((6, 6, 8, 8))
    out = op(xu, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == xu.shape
    xf = xu.float() / 255.0
    out_f = op(xf, torch.Generator().manual_seed(0))
    assert out_f.dtype == torch.float32 and float(out_f.min()) >= 0.0 and float(out_f.max()) <= 1.0
    # the uint8 and float paths agree up to rounding
    assert float((out_f * 255.0 - out.float()).abs().max()) <= 1.0


def test_color_jitter_result_does_not_depend_on_the_block_size() -> None:
    x = _images((10, 6, 6, 6))
    whole = color_jitter(x, block_size=10, generator=torch.Generator().manual_seed(4))
    for block in (1, 3, 64):
        assert torch.equal(color_jitter(x, block_size=block, generator=torch.Generator().manual_seed(4)), whole)
    with pytest.raises(ValueError, match="block_size must be a positive int or None, got 0"):
        color_jitter(x, block_size=0)
